"""The admin API's handling over a real (not listening) LiveConfig, in memory."""

import json

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock

from caddytw.admin import upstreams
from caddytw.admin.api import AdminAPI
from caddytw.admin.gojson import encode, etag
from caddytw.admin.origins import parse_admin_listen
from caddytw.server.reload import LiveConfig

JSON = {"content-type": "application/json", "host": "localhost:2019"}


def config(body="hi"):
    return {
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "listen": ["127.0.0.1:0"],
                        "routes": [
                            {"@id": "r1", "handle": [{"handler": "static_response", "body": body}]}
                        ],
                    }
                }
            }
        }
    }


@pytest.fixture
def api():
    live = LiveConfig(MemoryReactorClock(), MultiService())
    live.load(config())
    stops = []
    admin = AdminAPI(live, lambda: stops.append(True))
    admin.address = parse_admin_listen("localhost:2019")
    admin.stops = stops
    return admin


def call(api, method, path, body=b"", **headers):
    all_headers = dict(JSON)
    all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    if isinstance(body, (dict, list, str)):
        body = json.dumps(body).encode()
    answer = api.handle(method, path, all_headers, body)
    if isinstance(answer, Deferred):  # loads into a runtime that is not listening fire at once
        results = []
        answer.addBoth(results.append)
        return results[0]
    return answer


def error_of(response):
    return json.loads(response.body)["error"]


def test_get_config_with_caddy_etag(api):
    response = call(api, "GET", "/config/")
    assert response.status == 200
    assert json.loads(response.body) == config()
    assert response.headers["ETag"] == etag("/config/", encode(config()))
    assert call(api, "GET", "/config").status == 301


def test_mutation_reloads_and_if_match(api):
    path = "/config/apps/http/servers/srv0/routes/0/handle/0/body"
    tag = call(api, "GET", path).headers["ETag"]
    response = call(api, "PATCH", path, "new", if_match=tag)
    assert response.status == 200, response.body
    assert (
        api.live.raw["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["body"] == "new"
    )
    stale = call(api, "PATCH", path, "newer", if_match=tag)
    assert stale.status == 412
    assert error_of(stale) == "If-Match header did not match current config hash"
    assert call(api, "PATCH", path, "x", if_match="nope").status == 400
    assert call(api, "PATCH", path, "x", if_match='"a b c"').status == 400


def test_mutations_need_json(api):
    response = call(
        api, "POST", "/config/apps/http/servers/srv0/listen", b'"x"', content_type="text/plain"
    )
    assert response.status == 400
    assert (
        error_of(response) == "unacceptable content-type: text/plain; 'application/json' required"
    )
    assert (
        call(api, "DELETE", "/config/apps/http/servers/srv0/routes/0", content_type="").status
        == 200
    )


def test_bad_config_keeps_running_one(api):
    before = api.live.raw
    servers = api.live.servers
    response = call(api, "PUT", "/config/apps/http/servers/srv0/idle_timeout", "xx")
    assert response.status == 400
    body = json.loads(response.body)
    assert "apps.http.servers.srv0.idle_timeout" in body["error"]
    assert body["errors"][0]["path"] == "apps.http.servers.srv0.idle_timeout"
    assert api.live.raw is before and api.live.servers is servers


def test_load_json_and_caddyfile(api):
    assert call(api, "POST", "/load", config("other")).status == 200
    assert api.live.raw == config("other")
    bad = call(api, "POST", "/load", b"{bad")
    assert bad.status == 400 and error_of(bad).startswith("loading config: decoding request body")
    unknown = call(api, "POST", "/load", {"apps": {"nope": {}}})
    assert unknown.status == 400 and "apps.nope" in error_of(unknown)
    assert api.live.raw == config("other")
    caddyfile = b':8080 {\n\trespond "cf"\n}\n'
    response = call(api, "POST", "/load", caddyfile, content_type="text/caddyfile")
    assert response.status == 200, response.body
    assert "srv0" in api.live.raw["apps"]["http"]["servers"]
    wrong = call(api, "POST", "/load", b"x", content_type="text/yaml")
    assert wrong.status == 400 and error_of(wrong) == "unrecognized config adapter 'yaml'"
    assert call(api, "GET", "/load").status == 405


def test_unchanged_config_is_not_reloaded(api):
    servers = api.live.servers
    assert call(api, "POST", "/load", config()).status == 200
    assert api.live.servers is servers
    assert call(api, "POST", "/load", config(), cache_control="must-revalidate").status == 200
    assert api.live.servers is not servers


def test_shared_state_survives_reloads(api):
    shared = api.live.servers[0].context.shared
    shared["upstream:127.0.0.1:9"] = "healthy"
    assert call(api, "POST", "/load", config("two")).status == 200
    assert api.live.servers[0].context.shared is shared


def test_ids(api):
    response = call(api, "GET", "/id/r1/handle/0/body")
    assert json.loads(response.body) == "hi"
    assert response.headers["ETag"].startswith(
        '"/config/apps/http/servers/srv0/routes/0/handle/0/body '
    )
    missing = call(api, "GET", "/id/zz")
    assert missing.status == 404 and error_of(missing) == "unknown object ID 'zz'"
    assert call(api, "GET", "/id/").status == 400
    assert call(api, "PATCH", "/id/r1/handle/0/body", "via id").status == 200
    assert json.loads(call(api, "GET", "/id/r1/handle/0/body").body) == "via id"


def test_host_and_origin(api):
    assert call(api, "GET", "/config/", host="evil.com").status == 403
    assert error_of(call(api, "GET", "/config/", host="evil.com")) == "host not allowed: evil.com"
    assert call(api, "GET", "/config/", host="127.0.0.1:2019").status == 200
    assert call(api, "GET", "/config/", origin="http://evil.com").status == 403
    assert call(api, "GET", "/config/", origin="http://localhost:2019").status == 200


def test_stop_upstreams_metrics_and_404(api):
    response = call(api, "POST", "/stop")
    assert response.status == 200 and response.after is not None
    response.after()
    assert api.stops == [True]
    assert call(api, "GET", "/stop").status == 405
    assert json.loads(call(api, "GET", "/reverse_proxy/upstreams").body) == []

    def provider():
        return [{"address": "127.0.0.1:9001", "num_requests": 0, "fails": 1}]

    upstreams.register(provider)
    try:
        rows = json.loads(call(api, "GET", "/reverse_proxy/upstreams").body)
    finally:
        upstreams.unregister(provider)
    assert rows == [{"address": "127.0.0.1:9001", "num_requests": 0, "fails": 1}]
    metrics = call(api, "GET", "/metrics")
    assert metrics.status == 200 and b"caddy_http_requests_total" in metrics.body
    missing = call(api, "GET", "/nothing")
    assert missing.status == 404 and missing.body == b"404 page not found\n"
    # Go's http.NotFound, as Caddy answers (checked against Caddy 2.6).
    assert missing.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
