"""Selection policies in memory: exhaustive small cases and hypothesis properties."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.handlers.reverse_proxy.selection import (
    POLICIES,
    StaticRequest,
    cookie_value,
    parse_policy,
    rendezvous_hash,
)


@dataclass
class Fake:
    dial: str
    num_requests: int = 0
    up: bool = True

    def available(self) -> bool:
        return self.up


def pool(n: int) -> list[Fake]:
    return [Fake(f"10.0.0.{i}:80") for i in range(n)]


def policy(data: dict, seed: int = 1):
    return parse_policy(ObjectReader(data, "selection_policy"), random.Random(seed))


REQ = StaticRequest(remote_host="1.2.3.4", client_ip="5.6.7.8", uri="/x?a=1")


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_returns_none_when_nothing_is_available(name):
    extra = {"key": "k"} if name == "query" else {"field": "f"} if name == "header" else {}
    upstreams = pool(3)
    for u in upstreams:
        u.up = False
    assert policy({"policy": name, **extra}).select(upstreams, REQ).upstream is None


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_with_a_single_upstream_picks_it_while_available(name):
    extra = {"key": "k"} if name == "query" else {"field": "f"} if name == "header" else {}
    extra |= {"weights": [1]} if name == "weighted_round_robin" else {}
    chooser = policy({"policy": name, **extra})
    only = pool(1)
    assert [chooser.select(only, REQ).upstream for _ in range(3)] == [only[0]] * 3
    only[0].up = False
    assert chooser.select(only, REQ).upstream is None


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_only_picks_available_upstreams(name):
    extra = {"key": "k"} if name == "query" else {"field": "f"} if name == "header" else {}
    extra |= {"weights": [1, 1, 1, 1]} if name == "weighted_round_robin" else {}
    chooser = policy({"policy": name, **extra})
    upstreams = pool(4)
    upstreams[1].up = upstreams[3].up = False
    for index in range(50):
        request = StaticRequest(remote_host=f"9.9.9.{index}", uri=f"/{index}")
        assert chooser.select(upstreams, request).upstream in (upstreams[0], upstreams[2])


def test_round_robin_skips_unavailable_and_cycles():
    chooser = policy({"policy": "round_robin"})
    upstreams = pool(3)
    picks = [chooser.select(upstreams, REQ).upstream.dial for _ in range(6)]
    assert Counter(picks) == {u.dial: 2 for u in upstreams}
    upstreams[0].up = False
    assert {chooser.select(upstreams, REQ).upstream.dial for _ in range(4)} == {
        upstreams[1].dial,
        upstreams[2].dial,
    }


def test_weighted_round_robin_exact_shares_and_zero_weight():
    chooser = policy({"policy": "weighted_round_robin", "weights": [5, 2, 0]})
    upstreams = pool(3)
    picks = Counter(chooser.select(upstreams, REQ).upstream.dial for _ in range(70))
    assert picks == {upstreams[0].dial: 50, upstreams[1].dial: 20}


def test_least_conn_picks_the_least_loaded_and_breaks_ties_randomly():
    upstreams = pool(3)
    upstreams[0].num_requests, upstreams[1].num_requests, upstreams[2].num_requests = 5, 1, 1
    chooser = policy({"policy": "least_conn"})
    picks = {chooser.select(upstreams, REQ).upstream.dial for _ in range(60)}
    assert picks == {upstreams[1].dial, upstreams[2].dial}


def test_random_choose_never_picks_the_busiest_of_two():
    upstreams = pool(2)
    upstreams[0].num_requests = 10
    chooser = policy({"policy": "random_choose", "choose": 2})
    assert {chooser.select(upstreams, REQ).upstream.dial for _ in range(20)} == {upstreams[1].dial}


def test_first_policy():
    upstreams = pool(3)
    chooser = policy({"policy": "first"})
    assert chooser.select(upstreams, REQ).upstream is upstreams[0]
    upstreams[0].up = False
    assert chooser.select(upstreams, REQ).upstream is upstreams[1]


def test_hash_keys():
    upstreams = pool(5)
    for name, request_key in (
        ("ip_hash", REQ.remote_host),
        ("client_ip_hash", REQ.client_ip),
        ("uri_hash", REQ.uri),
    ):
        assert policy({"policy": name}).select(upstreams, REQ).upstream is rendezvous_hash(
            upstreams, request_key
        )


def test_query_and_header_fall_back_when_the_key_is_missing():
    upstreams = pool(3)
    query = policy({"policy": "query", "key": "u", "fallback": {"policy": "first"}})
    assert query.select(upstreams, StaticRequest()).upstream is upstreams[0]
    keyed = query.select(upstreams, StaticRequest(query={"u": ["bob"]})).upstream
    assert keyed is rendezvous_hash(upstreams, "bob")
    header = policy({"policy": "header", "field": "X-U", "fallback": {"policy": "first"}})
    assert header.select(upstreams, StaticRequest()).upstream is upstreams[0]
    by_host = policy({"policy": "header", "field": "Host"})
    request = StaticRequest(host="example.test:8080")
    assert by_host.select(upstreams, request).upstream is rendezvous_hash(
        upstreams, "example.test:8080"
    )


def test_cookie_policy():
    upstreams = pool(3)
    chooser = policy({"policy": "cookie", "secret": "k", "fallback": {"policy": "first"}})
    fresh = chooser.select(upstreams, StaticRequest())
    value = hmac.new(b"k", upstreams[0].dial.encode(), hashlib.sha256).hexdigest()
    assert fresh.upstream is upstreams[0]
    assert fresh.set_cookie == f"lb={value}; Path=/; HttpOnly; SameSite=Lax"
    sticky = chooser.select(
        upstreams, StaticRequest(cookies={"lb": cookie_value("k", upstreams[2].dial)})
    )
    assert sticky.upstream is upstreams[2] and sticky.set_cookie is None
    # The sticky upstream went away: fall back and re-issue the cookie.
    upstreams[2].up = False
    moved = chooser.select(
        upstreams,
        StaticRequest(cookies={"lb": cookie_value("k", upstreams[2].dial)}, secure=True),
    )
    assert moved.upstream is upstreams[0]
    assert moved.set_cookie.endswith("; Path=/; Secure; SameSite=None")


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"policy": "nope"}, "selection_policy.policy"),
        ({"policy": "random", "extra": 1}, "selection_policy.extra"),
        ({"policy": "random_choose", "choose": 1}, "selection_policy.choose"),
        ({"policy": "weighted_round_robin", "weights": [1, -1]}, "selection_policy.weights[1]"),
        ({"policy": "query"}, "selection_policy.key"),
        ({"policy": "header"}, "selection_policy.field"),
        (
            {"policy": "cookie", "fallback": {"policy": "bad"}},
            "selection_policy.fallback.policy",
        ),
    ],
)
def test_bad_policy_config_names_the_path(data, path):
    with pytest.raises(ConfigError) as error:
        policy(data)
    assert error.value.path == path


keys = st.text(min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 8), down=st.data(), key_list=st.lists(keys, min_size=1, max_size=40))
def test_rendezvous_moves_only_the_keys_of_the_removed_upstream(n, down, key_list):
    upstreams = pool(n)
    before = {k: rendezvous_hash(upstreams, k) for k in key_list}
    gone = down.draw(st.sampled_from(upstreams))
    gone.up = False
    after = {k: rendezvous_hash(upstreams, k) for k in key_list}
    for key in key_list:
        if before[key] is not gone:
            assert after[key] is before[key]  # untouched keys stay put
        else:
            assert after[key] is not gone and after[key].available()
    gone.up = True
    assert {k: rendezvous_hash(upstreams, k) for k in key_list} == before  # and come back


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32))
def test_rendezvous_spreads_keys_roughly_evenly(n, seed):
    upstreams = pool(n)
    rng = random.Random(seed)
    counts = Counter(
        rendezvous_hash(upstreams, str(rng.getrandbits(64))).dial for _ in range(300 * n)
    )
    # Each share of 300n keys is Binomial(300n, 1/n): mean 300, sd < 18; 150 is > 8 sd.
    assert len(counts) == n and min(counts.values()) > 150


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(st.integers(0, 5), min_size=1, max_size=6).filter(lambda w: sum(w) > 0),
    rounds=st.integers(1, 4),
)
def test_weighted_round_robin_shares_match_weights(weights, rounds):
    upstreams = pool(len(weights))
    chooser = policy({"policy": "weighted_round_robin", "weights": weights})
    picks = Counter(
        chooser.select(upstreams, REQ).upstream.dial for _ in range(sum(weights) * rounds)
    )
    assert picks == {u.dial: w * rounds for u, w in zip(upstreams, weights, strict=True) if w}
