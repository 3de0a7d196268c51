"""Core routing and handlers answer like Caddy 2.6 on the same config."""

import pytest

from tests.compat.harness import CADDY, both_servers, fetch

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

CONFIG = {
    "apps": {
        "http": {
            "servers": {
                "s": {
                    "listen": [],
                    "routes": [
                        {
                            "match": [{"path": ["/json"]}],
                            "handle": [{"handler": "static_response", "body": '{"a": 1}'}],
                        },
                        {
                            "match": [{"path": ["/err"]}],
                            "handle": [{"handler": "error", "error": "boom", "status_code": 418}],
                        },
                        {
                            "match": [{"path": ["/plain-err"]}],
                            "handle": [{"handler": "error", "error": "x", "status_code": 403}],
                        },
                        {
                            "match": [{"path": ["/A*"]}],
                            "terminal": True,
                            "handle": [
                                {
                                    "handler": "static_response",
                                    "body": "{http.request.uri.path}|{http.request.method}|"
                                    "{http.request.uri.query}|{http.request.proto}",
                                }
                            ],
                        },
                        {
                            "match": [{"path": ["/g*"]}],
                            "group": "g",
                            "handle": [{"handler": "vars", "v": "one"}],
                        },
                        {
                            "match": [{"path": ["/g*"]}],
                            "group": "g",
                            "handle": [{"handler": "vars", "v": "two"}],
                        },
                        {
                            "match": [{"path": ["/g*"]}],
                            "handle": [{"handler": "static_response", "body": "{http.vars.v}"}],
                        },
                        {
                            "match": [{"method": ["PUT"]}, {"header": {"X-Go": ["y*"]}}],
                            "handle": [
                                {
                                    "handler": "static_response",
                                    "status_code": 202,
                                    "headers": {"X-Multi": ["a", "b"]},
                                    "body": "put-or-go",
                                }
                            ],
                        },
                        {
                            "match": [{"query": {"q": ["1"]}, "not": [{"path": ["/no"]}]}],
                            "handle": [{"handler": "static_response", "body": "query"}],
                        },
                        {
                            "match": [{"path_regexp": {"name": "n", "pattern": "^/re/(\\w+)$"}}],
                            "handle": [
                                {"handler": "static_response", "body": "re {http.regexp.n.1}"}
                            ],
                        },
                        {
                            "match": [{"path": ["/term/*"]}],
                            "handle": [
                                {
                                    "handler": "subroute",
                                    "routes": [
                                        {
                                            "match": [{"path": ["/term/stop"]}],
                                            "terminal": True,
                                            "handle": [
                                                {
                                                    "handler": "headers",
                                                    "response": {"set": {"X-Term": ["1"]}},
                                                }
                                            ],
                                        },
                                        {"handle": [{"handler": "vars", "v": "inner"}]},
                                    ],
                                }
                            ],
                        },
                        {
                            "match": [{"path": ["/term/*"]}],
                            "handle": [
                                {"handler": "static_response", "body": "after {http.vars.v}"}
                            ],
                        },
                        {
                            "match": [{"path": ["/sub/*"]}],
                            "handle": [
                                {
                                    "handler": "subroute",
                                    "routes": [
                                        {
                                            "match": [{"path": ["/sub/a"]}],
                                            "handle": [
                                                {"handler": "static_response", "body": "sub a"}
                                            ],
                                        },
                                        {"handle": [{"handler": "error", "status_code": 401}]},
                                    ],
                                    "errors": {
                                        "routes": [
                                            {
                                                "handle": [
                                                    {
                                                        "handler": "static_response",
                                                        "body": "sub-err {http.error.status_code}",
                                                    }
                                                ]
                                            }
                                        ]
                                    },
                                }
                            ],
                        },
                    ],
                    "errors": {
                        "routes": [
                            {
                                "match": [{"path": ["/err"]}],
                                "handle": [
                                    {
                                        "handler": "static_response",
                                        "body": "E {http.error.status_code} "
                                        "{http.error.status_text} {http.error.message}",
                                    }
                                ],
                            }
                        ]
                    },
                }
            }
        }
    }
}

REQUESTS = [
    ("GET", "/json", {}),
    ("GET", "/err", {}),
    ("GET", "/plain-err", {}),
    ("GET", "/abc?x=1", {}),
    ("GET", "/Abc/../Ab?x=1", {}),
    ("GET", "/a%20b", {}),
    ("GET", "/gx", {}),
    ("PUT", "/p", {}),
    ("GET", "/p", {"X-Go": "yes"}),
    ("GET", "/p", {"X-Go": "no"}),
    ("GET", "/z?q=1", {}),
    ("GET", "/no?q=1", {}),
    ("GET", "/re/word", {}),
    ("GET", "/re/two/parts", {}),
    ("GET", "/term/stop", {}),
    ("GET", "/term/go", {}),
    ("GET", "/sub/a", {}),
    ("GET", "/sub/b", {}),
    ("HEAD", "/json", {}),
    ("GET", "/nothing", {}),
    ("DELETE", "/nothing", {}),
]


def test_core_answers_match_caddy(tmp_path):
    with both_servers(CONFIG, tmp_path) as (caddy_port, ours_port):
        for method, target, headers in REQUESTS:
            theirs = fetch(caddy_port, method, target, headers).comparable()
            ours = fetch(ours_port, method, target, headers).comparable()
            assert ours == theirs, f"{method} {target}"


def raw_exchange(port, data):
    """Status line and body of a raw HTTP exchange (the connection is closed after)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


SERVER_LEVEL = [
    b"GET http://example.com/abs?x=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /json HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /A/x HTTP/1.0\r\n\r\n",
]


def test_server_level_answers_match_caddy(tmp_path):
    """What Go's server settles before routing: absolute-form targets, OPTIONS *, and an
    HTTP/1.1 request without Host."""
    config = {
        "apps": {
            "http": {
                "servers": {
                    "s": {
                        "listen": [],
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "static_response",
                                        "body": "{http.request.uri} {http.request.host}",
                                    }
                                ]
                            }
                        ],
                    }
                }
            }
        }
    }
    with both_servers(config, tmp_path) as (caddy_port, ours_port):
        for request in SERVER_LEVEL:
            assert raw_exchange(ours_port, request) == raw_exchange(caddy_port, request), request
