"""Caddy-identical JSON encoding and ETags (golden values from caddy 2.6.2's admin API)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from caddytw.admin.gojson import encode, etag, fnv1a32

CONFIG = {
    "admin": {"listen": "127.0.0.1:23019"},
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "listen": ["127.0.0.1:23080"],
                    "routes": [
                        {"@id": "r1", "handle": [{"handler": "static_response", "body": "hi"}]}
                    ],
                }
            }
        }
    },
}


def test_etags_match_caddy():
    assert etag("/config/", encode(CONFIG)) == '"/config/ 5fdd98aa"'
    listen = CONFIG["apps"]["http"]["servers"]["srv0"]["listen"]
    path = "/config/apps/http/servers/srv0/listen"
    assert etag(path, encode(listen)) == f'"{path} e187f693"'
    assert fnv1a32(encode("hi")) == 0x7E0337A6
    assert encode(None) == b"null\n"


def test_go_formatting():
    assert encode({"b": 1, "a": [1.0, 1.5, 1e-7, 1e22, 0.000001, -0.0]}) == (
        b'{"a":[1,1.5,1e-7,1e+22,0.000001,-0],"b":1}\n'
    )
    assert encode("<a&b>\u2028") == b'"\\u003ca\\u0026b\\u003e\\u2028"\n'


@given(
    st.recursive(
        st.none()
        | st.booleans()
        # Go decodes config numbers as float64: integers past 2**53 are not exact there.
        | st.integers(min_value=-(2**53), max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=10,
    )
)
def test_encoding_round_trips(value):
    assert json.loads(encode(value), parse_int=float) == value
