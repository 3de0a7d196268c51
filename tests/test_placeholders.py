"""Placeholders: template compilation, escapes, and every request placeholder."""

from hypothesis import given
from hypothesis import strategies as st

from caddytw.http.placeholders import Template, split_template
from tests.support.memory import memory_server


def body_for(template, **request):
    server = memory_server([{"handle": [{"handler": "static_response", "body": template}]}])
    return server.request(**request).body.decode()


def test_request_placeholders():
    cases = {
        "{http.request.host}": "example.com",
        "{http.request.hostport}": "example.com:8443",
        "{http.request.method}": "POST",
        "{http.request.uri}": "/a%20b/c.txt?x=1&y=2",
        "{http.request.uri.path}": "/a b/c.txt",
        "{http.request.uri.query}": "x=1&y=2",
        "{http.request.uri.query.y}": "2",
        "{http.request.uri.path.0}": "a b",
        "{http.request.uri.path.file}": "c.txt",
        "{http.request.uri.path.file.base}": "c",
        "{http.request.uri.path.file.ext}": ".txt",
        "{http.request.uri.path.dir}": "/a b/",
        "{http.request.remote.host}": "127.0.0.1",
        "{http.request.scheme}": "http",
        "{http.request.proto}": "HTTP/1.1",
        "{http.request.header.X-Thing}": "v1",
        "{http.request.local.port}": "8080",
        "{http.request.cookie.c}": "yum",
    }
    for template, expected in cases.items():
        body = body_for(
            template,
            method="POST",
            target="/a%20b/c.txt?x=1&y=2",
            host="example.com:8443",
            headers={"X-Thing": "v1", "Cookie": "c=yum"},
        )
        assert body == expected, template


def test_escaped_braces_and_unknown_keys():
    assert Template("\\{http.request.host\\}").constant == "{http.request.host}"
    assert body_for("{nope} {http.request.method}") == "{nope} GET"


def test_env_placeholder(monkeypatch):
    monkeypatch.setenv("CADDYTW_TEST_VALUE", "from-env")
    assert body_for("{env.CADDYTW_TEST_VALUE}") == "from-env"


@given(st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=30))
def test_plain_text_is_constant(text):
    template = Template(text)
    assert template.constant == text


@given(st.lists(st.one_of(st.text(alphabet="abc .", max_size=5), st.just("{k}")), max_size=8))
def test_split_roundtrip(pieces):
    text = "".join(pieces)
    rebuilt = "".join("{" + t + "}" if is_key else t for is_key, t in split_template(text))
    assert rebuilt == text
