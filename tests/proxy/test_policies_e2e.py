"""Every selection policy against three real upstream processes: distribution and
stickiness over many requests through a real caddytw process."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter

import pytest

from tests.proxy.harness import Client, port_of, proxy, proxy_route, upstreams


@pytest.fixture(scope="module")
def three():
    with upstreams("a", "b", "c") as started:
        yield started


def names_for(port: int, count: int, path: str = "/", source: str = "127.0.0.1", **headers):
    client = Client(port, source=source)
    try:
        return [client.request("GET", path, **headers).upstream for _ in range(count)]
    finally:
        client.close()


def policy_proxy(tmp_path, three, policy: dict, **extra):
    return proxy(tmp_path, proxy_route(three, load_balancing={"selection_policy": policy}), **extra)


@pytest.mark.parametrize("policy", ["random", "random_choose", "least_conn"])
def test_random_policies_use_every_upstream(tmp_path, three, policy):
    with policy_proxy(tmp_path, three, {"policy": policy}) as server:
        counts = Counter(names_for(port_of(server), 90))
    # Missing one of three upstreams in 90 fair draws has probability ~1e-15.
    assert set(counts) == {"a", "b", "c"}


def test_round_robin_cycles(tmp_path, three):
    with policy_proxy(tmp_path, three, {"policy": "round_robin"}) as server:
        names = names_for(port_of(server), 30)
    assert Counter(names) == {"a": 10, "b": 10, "c": 10}
    assert all(names[i] != names[i + 1] for i in range(len(names) - 1))
    assert names[:3] * 10 == names


def test_weighted_round_robin_follows_weights(tmp_path, three):
    policy = {"policy": "weighted_round_robin", "weights": [3, 1, 0]}
    with policy_proxy(tmp_path, three, policy) as server:
        names = names_for(port_of(server), 40)
    assert Counter(names) == {"a": 30, "b": 10}


def test_first_takes_the_first_available(tmp_path, three):
    with policy_proxy(tmp_path, three, {"policy": "first"}) as server:
        assert set(names_for(port_of(server), 10)) == {"a"}


def test_ip_hash_is_sticky_per_peer_and_spreads_peers(tmp_path, three):
    with policy_proxy(tmp_path, three, {"policy": "ip_hash"}) as server:
        port = port_of(server)
        owners = {}
        for last in range(2, 32):
            seen = set(names_for(port, 3, source=f"127.0.0.{last}"))
            assert len(seen) == 1  # sticky
            owners[last] = seen.pop()
    assert set(owners.values()) == {"a", "b", "c"}


def test_client_ip_hash_uses_the_forwarded_client(tmp_path, three):
    with policy_proxy(
        tmp_path,
        three,
        {"policy": "client_ip_hash"},
        trusted_proxies={"source": "static", "ranges": ["127.0.0.1/32"]},
    ) as server:
        port = port_of(server)
        owners = {}
        for last in range(1, 31):
            seen = set(names_for(port, 3, X_Forwarded_For=f"10.0.0.{last}"))
            assert len(seen) == 1
            owners[last] = seen.pop()
    assert set(owners.values()) == {"a", "b", "c"}


def test_uri_hash_is_sticky_per_uri(tmp_path, three):
    with policy_proxy(tmp_path, three, {"policy": "uri_hash"}) as server:
        port = port_of(server)
        owners = {}
        for index in range(30):
            seen = set(names_for(port, 3, path=f"/item/{index}"))
            assert len(seen) == 1
            owners[index] = seen.pop()
    assert set(owners.values()) == {"a", "b", "c"}


def test_query_policy_hashes_the_key_and_falls_back(tmp_path, three):
    policy = {"policy": "query", "key": "user", "fallback": {"policy": "round_robin"}}
    with policy_proxy(tmp_path, three, policy) as server:
        port = port_of(server)
        owners = {}
        for user in range(30):
            seen = set(names_for(port, 3, path=f"/?user=u{user}&other={user}"))
            assert len(seen) == 1
            owners[user] = seen.pop()
        fallback = names_for(port, 9, path="/?other=1")
    assert set(owners.values()) == {"a", "b", "c"}
    assert Counter(fallback) == {"a": 3, "b": 3, "c": 3}


def test_header_policy_hashes_the_field_and_falls_back(tmp_path, three):
    policy = {"policy": "header", "field": "X-User", "fallback": {"policy": "first"}}
    with policy_proxy(tmp_path, three, policy) as server:
        port = port_of(server)
        owners = {}
        for user in range(30):
            seen = set(names_for(port, 3, X_User=f"user-{user}"))
            assert len(seen) == 1
            owners[user] = seen.pop()
        fallback = set(names_for(port, 5))
    assert set(owners.values()) == {"a", "b", "c"}
    assert fallback == {"a"}


def test_cookie_policy_sets_and_honours_a_sticky_cookie(tmp_path, three):
    policy = {"policy": "cookie", "secret": "s3cret", "fallback": {"policy": "round_robin"}}
    expected = {
        u.name: hmac.new(b"s3cret", u.dial.encode(), hashlib.sha256).hexdigest() for u in three
    }
    with policy_proxy(tmp_path, three, policy) as server:
        client = Client(port_of(server))
        first = client.request("GET", "/")
        cookie = first.headers["Set-Cookie"]
        assert cookie == f"lb={expected[first.upstream]}; Path=/; HttpOnly; SameSite=Lax"
        value = cookie.split(";")[0]
        sticky = [client.request("GET", "/", Cookie=value) for _ in range(12)]
        assert {r.upstream for r in sticky} == {first.upstream}
        assert all(r.headers["Set-Cookie"] is None for r in sticky)
        # A cookie matching no upstream is replaced by the fallback's choice.
        fresh = client.request("GET", "/", Cookie="lb=bogus")
        assert fresh.headers["Set-Cookie"].startswith(f"lb={expected[fresh.upstream]};")
        # Without a cookie the fallback spreads new clients over every upstream.
        spread = {client.request("GET", "/").upstream for _ in range(6)}
        client.close()
    assert spread == {"a", "b", "c"}
