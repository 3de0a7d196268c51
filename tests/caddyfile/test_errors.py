"""Errors name the file and line Caddy 2.6.2 names for the same input.

The expected line numbers were checked against ``caddy adapt`` by hand.
"""

from __future__ import annotations

import pytest

from caddytw.caddyfile import CaddyfileError, adapt

CASES = [
    ('example.com {\n\trespond "x"\n\tbogus arg\n}\n', 3, "unrecognized directive: bogus"),
    ("example.com {\n\troot /srv\n}\n", 2, "Wrong argument count"),
    ('example.com {\n\trespond @missing "x"\n}\n', 2, "unrecognized matcher name: @missing"),
    ('example.com {\n\trespond "x"\n', 2, "expecting '}'"),
    ("{\n\tnot_an_option\n}\n:80 {\n}\n", 2, "unrecognized global option: not_an_option"),
    ("example.com {\n\timport no_such_file\n}\n", 2, "File to import not found"),
    ("a.com {\n}\n{\n\tdebug\n}\n", 4, "must be first"),
    ("@m {\n}\n", 1, "cannot define a matcher outside of a site block"),
    ("example.com {\n\tredir /a /b 200\n}\n", 2, "Redir code not in the 3xx range"),
    (
        "example.com {\n\treverse_proxy localhost:9000 {\n\t\tlb_policy nope\n\t}\n}\n",
        3,
        "selection_policies.nope",
    ),
    ("example.com {\n\theader X { a }\n}\n", 2, "Unexpected next token after '{'"),
    ("example.com,\n", 1, "Unexpected EOF"),
    ("example.com {\n\t}\n}\n", 3, "subject does not qualify for certificate: '}'"),
    ("localhost\nrespond x\nbogus\n", 3, "Did you mean to define a second site?"),
    ("(s) {\n\trespond x\n}\n(s) {\n}\n", 4, "redeclaration of previously declared snippet s"),
    ("http://example.com:443 {\n}\n", 1, "scheme and port violate convention"),
    ("example.com {\n\t@a path /a\n\t@a path /b\n}\n", 3, "matcher is defined more than once"),
    ("a.com {\n\trespond 200 {\n\t\tbody a\n\t\tbody b\n\t}\n}\n", 4, "body already specified"),
    ("a {\n\terror 500 {\n\t\tmessage a\n\t\tmessage b\n\t}\n}\n", 4, "message already specified"),
]


@pytest.mark.parametrize(("text", "line", "message"), CASES)
def test_error_names_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CaddyfileError) as info:
        adapt(text, "Caddyfile")
    assert str(info.value).startswith(f"Caddyfile:{line}: ")
    assert message in str(info.value)
    assert info.value.line == line


def test_import_cycle_is_an_error(tmp_path: pytest.TempPathFactory) -> None:
    import pathlib

    base = pathlib.Path(str(tmp_path))
    (base / "a.conf").write_text("import b.conf\n")
    (base / "b.conf").write_text("import a.conf\n")
    main = base / "Caddyfile"
    main.write_text(":80 {\n\timport a.conf\n}\n")
    with pytest.raises(CaddyfileError, match="a cycle of imports exists"):
        adapt(main.read_text(), str(main))


def test_validate_names_caddy_modules_caddytw_lacks() -> None:
    """An adapted acme_server config is rejected naming the module and path (metrics is served)."""
    from caddytw.caddyfile import adapt
    from caddytw.server.build import validate

    config, _ = adapt(":8080 {\n\tacme_server\n\tmetrics /metrics\n}\n")
    problems = validate(config)
    assert any(
        "pki" not in p and "handle[0].handler: acme_server" in p and "not supported by caddytw" in p
        for p in problems
    ), problems
