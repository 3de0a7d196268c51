"""``authentication`` / ``http_basic`` (compared with Caddy 2.6.2 on the same hashes)."""

from __future__ import annotations

import base64
from typing import Any

import bcrypt
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import StringTransport

from caddytw.config.reader import ObjectReader
from caddytw.handlers.authentication import handler as authentication
from caddytw.handlers.authentication.passwords import PasswordChecker, parse_basic_authorization
from caddytw.server.build import validate
from tests.handlers.helpers import chain, echo, serve, serve_resource
from tests.support.memory import memory_server, parse_response

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
OTHER_HASH = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
ECHO = echo("user={http.auth.user.id}")


def auth(**provider: Any) -> dict[str, Any]:
    provider.setdefault("accounts", [{"username": "bob", "password": HASH}])
    return {"handler": "authentication", "providers": {"http_basic": provider}}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (basic("bob", "secret"), 200),
        (basic("bob", "wrong"), 401),
        (basic("alice", "secret"), 401),
        (basic("BOB", "secret"), 401),
        ({"Authorization": "Basic !!!"}, 401),
        ({"Authorization": "Bearer abc"}, 401),
        ({"Authorization": "bAsIc " + base64.b64encode(b"bob:secret").decode()}, 200),
        ({"Authorization": "Basic " + base64.b64encode(b"bobsecret").decode()}, 401),
    ],
)
def test_basic_auth(headers, status):
    response = serve(auth(), ECHO).request("GET", "/", headers=headers)
    assert response.status == status
    if status == 401:
        assert response.header("www-authenticate") == 'Basic realm="restricted"'
        assert response.body == b""
    else:
        assert response.body == b"user=bob"
        assert response.header("www-authenticate") is None


def test_base64_encoded_hash_as_older_caddyfiles_write_it():
    encoded = base64.b64encode(HASH.encode()).decode()
    server = serve(auth(accounts=[{"username": "al", "password": encoded}]), ECHO)
    assert server.request("GET", "/", headers=basic("al", "secret")).body == b"user=al"


def test_several_accounts_and_a_custom_realm():
    accounts = [{"username": "bob", "password": HASH}, {"username": "eve", "password": OTHER_HASH}]
    server = serve(auth(accounts=accounts, realm="Staff only", hash_cache={}), ECHO)
    assert server.request("GET", "/", headers=basic("eve", "other")).body == b"user=eve"
    denied = server.request("GET", "/", headers=basic("eve", "secret"))
    assert denied.header("www-authenticate") == 'Basic realm="Staff only"'


def test_password_with_colon_and_unicode():
    hashed = bcrypt.hashpw("p:ä".encode(), bcrypt.gensalt(4)).decode()
    server = serve(auth(accounts=[{"username": "zoë", "password": hashed}]), ECHO)
    token = base64.b64encode("zoë:p:ä".encode()).decode()
    response = server.request("GET", "/", headers={"Authorization": f"Basic {token}"})
    assert response.status == 200


def test_error_routes_answer_the_401_with_the_challenge_kept():
    errors = {"routes": [chain(echo("{http.error.status_code} {http.error.message}"))]}
    response = memory_server([chain(auth(), ECHO)], errors=errors).request("GET", "/")
    assert (response.status, response.body) == (401, b"401 not authenticated")
    assert response.header("www-authenticate") == 'Basic realm="restricted"'


def test_no_provider_denies_everything():
    server = serve({"handler": "authentication"}, ECHO)
    response = server.request("GET", "/", headers=basic("bob", "secret"))
    assert response.status == 401
    assert response.header("www-authenticate") is None


def test_user_id_is_a_var_for_the_access_log_and_matchers():
    routes = [
        chain(auth()),
        chain(echo("vars matched"), match=[{"vars": {"{http.auth.user.id}": ["bob"]}}]),
    ]
    response = memory_server(routes).request("GET", "/", headers=basic("bob", "secret"))
    assert response.body == b"vars matched"


def test_env_placeholders_in_accounts(monkeypatch):
    monkeypatch.setenv("CADDYTW_TEST_USER", "envuser")
    monkeypatch.setenv("CADDYTW_TEST_HASH", HASH)
    accounts = [{"username": "{env.CADDYTW_TEST_USER}", "password": "{env.CADDYTW_TEST_HASH}"}]
    server = serve(auth(accounts=accounts), ECHO)
    assert server.request("GET", "/", headers=basic("envuser", "secret")).status == 200


def test_parse_basic_authorization():
    assert parse_basic_authorization("Basic " + base64.b64encode(b"a:b:c").decode()) == ("a", "b:c")
    assert parse_basic_authorization("Basic " + base64.b64encode(b":").decode()) == ("", "")
    assert parse_basic_authorization("Basic YQ") is None  # unpadded: Go rejects it too
    assert parse_basic_authorization("Basic") is None
    assert parse_basic_authorization(None) is None


# -- the asynchronous path, with the thread pool replaced by hand-fired Deferreds -------


class ManualRunner:
    def __init__(self) -> None:
        self.pending: list[tuple[Deferred[bool], Any]] = []

    def __call__(self, work: Any) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.pending.append((d, work))
        return d

    def run_all(self) -> None:
        pending, self.pending = self.pending, []
        for d, work in pending:
            d.callback(work())


def async_site(runner: ManualRunner, next_handler: Any = None):
    config = ObjectReader(
        {"providers": {"http_basic": {"accounts": [{"username": "bob", "password": HASH}]}}}, "a"
    )

    class Context:
        reactor = object()  # no thread pool: replaced below
        shared: dict[str, Any] = {}

    handler = authentication.build(config, Context(), next_handler or EchoUser())
    handler.checker = PasswordChecker(runner)
    return serve_resource(handler)


class EchoUser:
    def render(self, request: Any) -> bytes:
        return b"hello " + request.caddy_vars["http.auth.user.id"].encode()


def connect(server: Any, headers: dict[str, str]):
    protocol = server.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    protocol.makeConnection(transport)
    lines = ["GET / HTTP/1.1", "Host: h", *(f"{k}: {v}" for k, v in headers.items())]
    protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    return protocol, transport


def test_verification_runs_off_the_reactor_and_resumes_the_chain():
    runner = ManualRunner()
    server = async_site(runner)
    _, transport = connect(server, basic("bob", "secret"))
    assert transport.value() == b""  # waiting for the thread
    assert len(runner.pending) == 1
    runner.run_all()
    response = parse_response(transport.value())
    assert (response.status, response.body) == (200, b"hello bob")


def test_success_is_remembered_so_the_next_request_is_synchronous():
    runner = ManualRunner()
    server = async_site(runner)
    connect(server, basic("bob", "secret"))
    runner.run_all()
    _, transport = connect(server, basic("bob", "secret"))
    assert runner.pending == []
    assert parse_response(transport.value()).status == 200


def test_failures_are_not_remembered_and_answer_401_later():
    runner = ManualRunner()
    server = async_site(runner)
    for _ in range(2):
        _, transport = connect(server, basic("bob", "nope"))
        assert len(runner.pending) == 1
        runner.run_all()
        response = parse_response(transport.value())
        assert response.status == 401
        assert response.header("www-authenticate") == 'Basic realm="restricted"'


def test_unknown_users_cost_a_real_comparison_and_are_never_cached():
    runner = ManualRunner()
    server = async_site(runner)
    for _ in range(2):
        _, transport = connect(server, basic("mallory", "secret"))
        assert len(runner.pending) == 1  # compared against a real hash: same cost
        runner.run_all()
        assert parse_response(transport.value()).status == 401


def test_client_gone_before_the_check_finishes():
    runner = ManualRunner()
    server = async_site(runner)
    protocol, transport = connect(server, basic("bob", "secret"))
    protocol.connectionLost(None)
    runner.run_all()  # must neither write nor raise
    assert transport.value() == b""


def test_a_later_handler_failing_after_resume_becomes_an_error_answer():
    class Boom:
        def render(self, request: Any) -> bytes:
            raise RuntimeError("kaboom")

    runner = ManualRunner()
    server = async_site(runner, Boom())
    _, transport = connect(server, basic("bob", "secret"))
    runner.run_all()
    response = parse_response(transport.value())
    assert response.status == 500
    assert b"kaboom" not in transport.value()


def test_concurrent_checks_of_the_same_credentials_share_one_computation():
    runner = ManualRunner()
    checker = PasswordChecker(runner)
    results: list[bool] = []
    for _ in range(3):
        checker.check(HASH.encode(), b"secret").addCallback(results.append)
    assert len(runner.pending) == 1
    runner.run_all()
    assert results == [True, True, True]
    assert checker.known_good(HASH.encode(), b"secret")


def test_checker_cache_is_bounded_lru():
    checker = PasswordChecker(lambda work: Deferred.fromCoroutine(_value(work())), cache_size=2)
    hashes = [bcrypt.hashpw(b"pw", bcrypt.gensalt(4)) for _ in range(3)]
    for hashed in hashes[:2]:
        checker.check(hashed, b"pw")
    assert checker.known_good(hashes[0], b"pw")  # refreshes hashes[0]
    checker.check(hashes[2], b"pw")
    assert len(checker) == 2
    assert checker.known_good(hashes[0], b"pw")
    assert not checker.known_good(hashes[1], b"pw")
    assert checker.known_good(hashes[2], b"pw")


async def _value(value: Any) -> Any:
    return value


def test_a_failing_check_counts_as_a_mismatch():
    checker = PasswordChecker(lambda work: fail(RuntimeError("thread pool gone")))
    results: list[bool] = []
    checker.check(HASH.encode(), b"secret").addCallback(results.append)
    assert results == [False]


def test_long_passwords_compare_their_first_72_bytes_like_go():
    hashed = bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4))
    from caddytw.handlers.authentication.passwords import bcrypt_matches

    assert bcrypt_matches(hashed, b"a" * 80)
    assert not bcrypt_matches(b"not a hash", b"x")


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        (
            {"accounts": [{"username": "a", "password": "$2a$04$short"}]},
            "accounts[0].password: not a bcrypt hash",
        ),
        (
            {"accounts": [{"username": "a", "password": "!!notbase64"}]},
            "accounts[0].password: base64-decoding password",
        ),
        (
            {"accounts": [{"username": "", "password": HASH}]},
            "accounts[0]: account 0: username and password are required",
        ),
        (
            {
                "accounts": [
                    {"username": "a", "password": HASH},
                    {"username": "a", "password": HASH},
                ]
            },
            "accounts[1].username: account 1: username is not unique: a",
        ),
        (
            {"accounts": [{"username": "a", "password": HASH, "salt": "!!"}]},
            "accounts[0].salt: base64-decoding salt",
        ),
        (
            {"accounts": [], "hash": {"algorithm": "scrypt"}},
            "hash.algorithm: unsupported hash algorithm 'scrypt'",
        ),
        (
            {"accounts": [], "hash": {"algorithm": "bcrypt", "cost": 4}},
            'hash.cost: unknown field "cost"',
        ),
        (
            {"accounts": [{"username": "a", "password": HASH, "pass": 1}]},
            'accounts[0].pass: unknown field "pass"',
        ),
    ],
)
def test_config_errors(provider, message):
    handler = {"handler": "authentication", "providers": {"http_basic": provider}}
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    errors = validate(config)
    assert len(errors) == 1
    assert errors[0].startswith(
        f"apps.http.servers.s.routes[0].handle[0].providers.http_basic.{message}"
    )


def test_unknown_provider_is_a_config_error():
    handler = {"handler": "authentication", "providers": {"jwt": {}}}
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [chain(handler)]}}}}}
    assert validate(config) == [
        "apps.http.servers.s.routes[0].handle[0].providers.jwt: "
        "unknown module: http.authentication.providers.jwt"
    ]
