"""Unit tests for behaviour not covered by caddy 2.6.2 goldens: our own
``file_sync`` directive, the later ``basic_auth`` alias, placeholders,
formatting warnings and the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from caddytw.caddyfile import CaddyfileError, adapt
from caddytw.caddyfile.cli import main
from caddytw.caddyfile.placeholders import expand


def site_routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = config["apps"]["http"]["servers"]["srv0"]["routes"]
    return routes


def test_file_sync_directive() -> None:
    config, _ = adapt(
        ":8080 {\n"
        "\tfile_sync /sync/* {\n"
        "\t\troot /srv/sync\n"
        "\t\tenable_upload\n"
        "\t\tclient laptop s3cret\n"
        "\t\tclient phone t0ken read_only\n"
        "\t}\n"
        "\trespond 404\n"
        "}\n"
    )
    routes = site_routes(config)
    # ordered like reverse_proxy: after respond in Caddy's order
    assert routes[0]["handle"] == [{"handler": "static_response", "status_code": 404}]
    assert routes[1] == {
        "match": [{"path": ["/sync/*"]}],
        "handle": [
            {
                "handler": "file_sync",
                "root": "/srv/sync",
                "enable_upload": True,
                "clients": [
                    {"id": "laptop", "token": "s3cret"},
                    {"id": "phone", "token": "t0ken", "read_only": True},
                ],
            }
        ],
    }


def test_file_sync_orders_before_file_server() -> None:
    config, _ = adapt(":80 {\n\tfile_server\n\tfile_sync {\n\t\troot /d\n\t}\n}\n")
    # both unmatched, so Caddy merges them into one route, in directive order
    handlers = [h["handler"] for r in site_routes(config) for h in r["handle"]]
    assert handlers == ["file_sync", "file_server"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("\t\tclient onlyid\n", "usage: client ID TOKEN"),
        ("\t\tclient a b writable\n", "usage: client ID TOKEN"),
        ("\t\tbogus\n", "unrecognized subdirective 'bogus'"),
        ("", "file_sync requires a root"),
    ],
)
def test_file_sync_errors(body: str, message: str) -> None:
    text = ":80 {\n\tfile_sync {\n" + ("\t\troot /d\n" if "root" not in message else "")
    text += body + "\t}\n}\n"
    with pytest.raises(CaddyfileError, match=message):
        adapt(text)


def test_basic_auth_alias_matches_basicauth() -> None:
    old, _ = adapt(":80 {\n\tbasicauth {\n\t\tu $2a$14$abc\n\t}\n}\n")
    new, _ = adapt(":80 {\n\tbasic_auth {\n\t\tu $2a$14$abc\n\t}\n}\n")
    assert old == new


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("{host}", "{http.request.host}"),
        ("{uri}", "{http.request.uri}"),
        ("{path}", "{http.request.uri.path}"),
        ("{query}", "{http.request.uri.query}"),
        ("{method}", "{http.request.method}"),
        ("{remote_host}", "{http.request.remote.host}"),
        ("{header.X-Forwarded-For}", "{http.request.header.X-Forwarded-For}"),
        ("{cookie.sid}", "{http.request.cookie.sid}"),
        ("{labels.1}", "{http.request.host.labels.1}"),
        ("{query.q}", "{http.request.uri.query.q}"),
        ("{re.name.1}", "{http.regexp.name.1}"),
        ("{vars.x}", "{http.vars.x}"),
        ("{rp.upstream.address}", "{http.reverse_proxy.upstream.address}"),
        ("{err.status_code}", "{http.error.status_code}"),
        ("{file_match.relative}", "{http.matchers.file.relative}"),
        ("https://{host}{uri}", "https://{http.request.host}{http.request.uri}"),
        ("{unknown}", "{unknown}"),
    ],
)
def test_placeholder_shorthands(short: str, long: str) -> None:
    assert expand(short) == long


def test_unformatted_input_warns_with_line() -> None:
    _, warnings = adapt(":80 {\n  respond x\n}\n", "Site")
    assert warnings == [
        "Site:2: Caddyfile input is not formatted; run the 'caddy fmt' command to fix "
        "inconsistencies"
    ]
    _, warnings = adapt(":80 {\n\trespond x\n}\n", "Site")
    assert warnings == []


def test_env_default_used_when_unset() -> None:
    config, _ = adapt(":80 {\n\trespond {$NOPE:fallback}\n}\n", environ={})
    assert site_routes(config)[0]["handle"][0]["body"] == "fallback"


def test_snippet_args_and_glob_import(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.caddy").write_text("a.test {\n\timport greet A\n}\n")
    (tmp_path / "sites" / "b.caddy").write_text("b.test {\n\timport greet B\n}\n")
    main_file = tmp_path / "Caddyfile"
    main_file.write_text('(greet) {\n\trespond "hello {args.0}"\n}\n\nimport sites/*.caddy\n')
    config, _ = adapt(main_file.read_text(), str(main_file))
    routes = site_routes(config)
    bodies = {
        r["match"][0]["host"][0]: r["handle"][0]["routes"][0]["handle"][0]["body"] for r in routes
    }
    assert bodies == {"a.test": "hello A", "b.test": "hello B"}


def run_cli(argv: list[str], **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_cli_adapt_pretty(tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(":80 {\n\trespond hi\n}\n")
    code, out, err = run_cli(["adapt", "--config", str(path), "--pretty"])
    assert code == 0 and err == ""
    assert out.startswith("{\n\t")
    assert json.loads(out)["apps"]["http"]["servers"]["srv0"]["listen"] == [":80"]


def test_cli_error_and_warning(tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(":80 {\n   nope\n}\n")
    code, out, err = run_cli(["adapt", "--config", str(path)])
    assert code == 1 and out == ""
    assert err.strip() == f"{path}:2: unrecognized directive: nope"
    path.write_text(":80 {\n   respond x\n}\n")
    code, out, err = run_cli(["--config", str(path), "--adapter", "caddyfile"])
    assert code == 0
    assert f"{path}:2: Caddyfile input is not formatted" in err


def test_cli_validate_hook(tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(":80 {\n\trespond x\n}\n")
    seen: list[dict[str, Any]] = []

    def ok(cfg: dict[str, Any]) -> list[str]:
        seen.append(cfg)
        return []

    assert run_cli(["adapt", "--config", str(path), "--validate"], validate=ok)[0] == 0
    assert seen and "apps" in seen[0]

    def bad(cfg: dict[str, Any]) -> list[str]:
        return ["apps.http.servers.srv0.listen: bad"]

    code, out, err = run_cli(["adapt", "--config", str(path), "--validate"], validate=bad)
    assert code == 1 and out == "" and "apps.http.servers.srv0.listen: bad" in err


def test_cli_missing_file_and_unknown_adapter(tmp_path: Path) -> None:
    code, _, err = run_cli(["adapt", "--config", str(tmp_path / "missing")])
    assert code == 1 and "missing" in err
    path = tmp_path / "Caddyfile"
    path.write_text(":80\n")
    code, _, err = run_cli(["adapt", "--config", str(path), "--adapter", "nginx"])
    assert code == 1 and "nginx" in err


def test_storage_global_option_file_system_and_postgres() -> None:
    config, _ = adapt("{\n\tstorage file_system {\n\t\troot /srv/certs\n\t}\n}\n:80 {\n}\n")
    assert config["storage"] == {"module": "file_system", "root": "/srv/certs"}
    text = (
        "{\n\tstorage postgres {\n\t\tconnection_string "
        '"postgres://caddy@db:5432/caddy?sslmode=disable"\n\t}\n}\n:80 {\n}\n'
    )
    config, _ = adapt(text)
    assert config["storage"] == {
        "module": "postgres",
        "connection_string": "postgres://caddy@db:5432/caddy?sslmode=disable",
    }
    with pytest.raises(CaddyfileError, match="unrecognized parameter 'root'"):
        adapt("{\n\tstorage postgres {\n\t\troot /x\n\t}\n}\n:80 {\n}\n")
    with pytest.raises(CaddyfileError, match=r"caddy\.storage\.redis"):
        adapt("{\n\tstorage redis\n}\n:80 {\n}\n")


def test_bad_postgres_storage_fails_validation_at_its_json_path() -> None:
    pytest.importorskip("psycopg")
    from caddytw.server.build import validate

    config, _ = adapt(
        '{\n\tstorage postgres {\n\t\tconnection_string "postgres://db:nope/x"\n\t}\n}\n'
        "localhost {\n\trespond ok\n}\n"
    )
    problems = validate(config)
    assert len(problems) == 1 and problems[0].startswith("storage.connection_string"), problems
