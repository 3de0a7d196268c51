"""Every matcher, in memory, with Caddy's semantics (checked against Caddy 2.6)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.http.gourl import caddy_clean_path
from caddytw.http.matchers import host_match, path_pattern_match, wildcard_match
from tests.support.memory import MemoryServer, memory_server


def answers(match, **server):
    """A server answering "yes" when ``match`` (one matcher set) matches, else empty."""
    return memory_server(
        [{"match": [match], "handle": [{"handler": "static_response", "body": "yes"}]}], **server
    )


def hit(server, *args, **kwargs):
    return server.request(*args, **kwargs).body == b"yes"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/api/*", "/api/list", True),
        ("/api/*", "/api/", True),
        ("/api/*", "/api", False),
        ("/api/*", "/API/LIST", True),
        ("*.php", "/x/y.php", True),
        ("*.php", "/x/y.phpx", False),
        ("/exact", "/exact", True),
        ("/exact", "/exact/", False),
        ("*mid*", "/a/mid/b", True),
        ("/mid/*/x", "/mid/q/x", True),
        ("/mid/*/x", "/mid/q/r/x", False),
        ("/A*", "/abc/../A/b", True),
        ("*", "/anything", True),
        ("/a//b", "/a/b", False),
    ],
)
def test_path(pattern, path, expected):
    assert hit(answers({"path": [pattern]}), "GET", path) is expected


def test_path_matches_decoded_path():
    assert hit(answers({"path": ["/a b"]}), "GET", "/a%20b")


@given(st.text(alphabet="/ab.", max_size=20))
def test_clean_path_is_idempotent_and_rooted(path):
    cleaned = caddy_clean_path("/" + path)
    assert cleaned.startswith("/")
    assert caddy_clean_path(cleaned) == cleaned
    assert "/../" not in cleaned + "/" and "//" not in cleaned


@given(st.text(alphabet="ab/.", max_size=10), st.text(alphabet="ab/.", max_size=10))
def test_prefix_and_suffix_patterns(prefix, rest):
    value = prefix + rest
    assert wildcard_match(prefix + "*", value)
    assert wildcard_match("*" + rest, value)
    assert path_pattern_match(value, value)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.com", "example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("a.*.com", "a.b.com", True),
    ],
)
def test_host_patterns(pattern, host, expected):
    assert host_match(pattern, host) is expected


def test_host_matcher_ignores_port_and_case():
    server = answers({"host": ["Example.COM"]})
    assert hit(server, "GET", "/", host="example.com:8080")
    assert not hit(server, "GET", "/", host="other.com")


def test_method():
    server = answers({"method": ["POST", "put"]})
    assert hit(server, "POST", "/")
    assert hit(server, "PUT", "/")
    assert not hit(server, "GET", "/")


def test_header_forms():
    server = answers({"header": {"X-A": ["on*"], "X-Absent": None, "X-Present": []}})
    assert hit(server, "GET", "/", headers={"X-A": "one", "X-Present": ""})
    assert not hit(server, "GET", "/", headers={"X-A": "one"})
    assert not hit(server, "GET", "/", headers={"X-A": "one", "X-Present": "1", "X-Absent": "1"})
    assert not hit(server, "GET", "/", headers={"X-A": "two", "X-Present": "1"})


def test_header_regexp_captures_are_placeholders():
    server = memory_server(
        [
            {
                "match": [{"header_regexp": {"X-Id": {"name": "id", "pattern": "^user-(\\d+)$"}}}],
                "handle": [{"handler": "static_response", "body": "{http.regexp.id.1}"}],
            }
        ]
    )
    assert server.request(headers={"X-Id": "user-42"}).body == b"42"
    assert server.request(headers={"X-Id": "nobody"}).body == b""


def test_path_regexp_named_groups():
    server = memory_server(
        [
            {
                "match": [
                    {"path_regexp": {"name": "f", "pattern": "^/files/(?P<name>[^/]+)\\.txt$"}}
                ],
                "handle": [
                    {"handler": "static_response", "body": "{http.regexp.f.name}|{http.regexp.f.1}"}
                ],
            }
        ]
    )
    assert server.request(target="/files/report.txt").body == b"report|report"


def test_query():
    server = answers({"query": {"a": ["1", "2"], "b": ["*"]}})
    assert hit(server, "GET", "/?a=2&b=x")
    assert not hit(server, "GET", "/?a=3&b=x")
    assert not hit(server, "GET", "/?a=1")


def test_protocol():
    assert hit(answers({"protocol": "http"}), "GET", "/")
    assert not hit(answers({"protocol": "https"}), "GET", "/")
    assert hit(answers({"protocol": "http/1.1"}), "GET", "/")
    assert not hit(answers({"protocol": "http/2+"}), "GET", "/")
    assert hit(
        answers({"protocol": "grpc"}), "GET", "/", headers={"Content-Type": "application/grpc"}
    )


def test_remote_ip_and_client_ip_with_trusted_proxies():
    server = MemoryServer(
        {
            "apps": {
                "http": {
                    "servers": {
                        "s": {
                            "listen": [":80"],
                            "trusted_proxies": {"source": "static", "ranges": ["10.0.0.0/8"]},
                            "routes": [
                                {
                                    "match": [{"client_ip": {"ranges": ["192.0.2.0/24"]}}],
                                    "handle": [{"handler": "static_response", "body": "yes"}],
                                }
                            ],
                        }
                    }
                }
            }
        },
        peer="10.1.2.3",
    )
    assert hit(server, "GET", "/", headers={"X-Forwarded-For": "192.0.2.7"})
    assert not hit(server, "GET", "/", headers={"X-Forwarded-For": "198.51.100.1"})
    untrusted = answers({"client_ip": {"ranges": ["192.0.2.0/24"]}})
    assert not hit(untrusted, "GET", "/", headers={"X-Forwarded-For": "192.0.2.7"})
    assert hit(answers({"remote_ip": {"ranges": ["127.0.0.1"]}}), "GET", "/")
    assert not hit(answers({"remote_ip": {"ranges": ["10.0.0.0/8"]}}), "GET", "/")


def test_not_negates_any_set():
    server = answers({"not": [{"path": ["/a"]}, {"method": ["POST"]}]})
    assert hit(server, "GET", "/b")
    assert not hit(server, "GET", "/a")
    assert not hit(server, "POST", "/b")


def test_vars_matcher():
    server = memory_server(
        [
            {"handle": [{"handler": "vars", "mode": "admin"}]},
            {
                "match": [{"vars": {"mode": ["admin"], "{http.request.method}": ["GET"]}}],
                "handle": [{"handler": "static_response", "body": "yes"}],
            },
        ]
    )
    assert hit(server, "GET", "/")
    assert not hit(server, "POST", "/")


def test_file_matcher(tmp_path):
    (tmp_path / "index.html").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "big.txt").write_text("x" * 100)
    (tmp_path / "small.txt").write_text("x")
    server = memory_server(
        [
            {
                "match": [
                    {
                        "file": {
                            "root": str(tmp_path),
                            "try_files": ["{http.request.uri.path}", "/index.html"],
                        }
                    }
                ],
                "handle": [{"handler": "static_response", "body": "{http.matchers.file.relative}"}],
            }
        ]
    )
    # Caddy 2.6.2 never matches a directory; a file asked for with a slash matches.
    assert server.request(target="/dir/").body == b"/index.html"
    assert server.request(target="/small.txt/").body == b"/small.txt"
    assert server.request(target="/missing").body == b"/index.html"
    smallest = memory_server(
        [
            {
                "match": [
                    {
                        "file": {
                            "root": str(tmp_path),
                            "try_files": ["/big.txt", "/small.txt"],
                            "try_policy": "smallest_size",
                        }
                    }
                ],
                "handle": [{"handler": "static_response", "body": "{http.matchers.file.relative}"}],
            }
        ]
    )
    assert smallest.request().body == b"/small.txt"


def test_unknown_matcher_and_cel_are_config_errors():
    from caddytw.server.build import validate

    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [":1"],
                        "routes": [
                            {"match": [{"nope": 1}]},
                            {"match": [{"expression": "true &&"}]},
                        ],
                    }
                }
            }
        }
    }
    errors = validate(config)
    assert any("routes[0].match[0].nope" in e for e in errors)
    assert any("routes[1].match[0].expression" in e for e in errors)
