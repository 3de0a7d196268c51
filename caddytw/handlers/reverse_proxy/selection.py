"""Load-balancing policies: pick one upstream from a pool for a request.

Pure logic. A policy sees the pool (objects with ``dial``, ``num_requests`` and
``available()``) and a :class:`SelectionRequest`, and returns a :class:`Choice`; the
``cookie`` policy's Set-Cookie comes back in the choice rather than being written, so
nothing here touches IO. Randomness comes from an injected ``random.Random``.

The hash policies use rendezvous (highest random weight) hashing over the available
upstreams: each key goes to the upstream with the highest ``hash(dial, key)``, so when an
upstream leaves, only the keys it owned move, and they come back when it returns.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.http.interfaces import ISelectionPolicyFactory, find_plugins


class Candidate(Protocol):
    dial: str

    @property
    def num_requests(self) -> int: ...

    def available(self) -> bool: ...


class SelectionRequest(Protocol):
    """What policies may look at: peer, client IP, URI, query, headers, cookies, TLS.

    The handler passes a lazy view of the live request (most policies read nothing);
    tests pass a :class:`StaticRequest`.
    """

    @property
    def remote_host(self) -> str: ...

    @property
    def client_ip(self) -> str: ...

    @property
    def uri(self) -> str: ...

    @property
    def query(self) -> dict[str, list[str]] | None: ...

    @property
    def cookies(self) -> dict[str, str] | None: ...

    @property
    def secure(self) -> bool: ...

    def header(self, name: str) -> str:
        """A request field's value (all values joined by ``,``); ``Host`` is the host."""
        ...


@dataclass(frozen=True)
class StaticRequest:
    """A :class:`SelectionRequest` with fixed values."""

    remote_host: str = ""
    client_ip: str = ""
    uri: str = "/"
    query: dict[str, list[str]] | None = None
    headers: dict[str, str] | None = None
    cookies: dict[str, str] | None = None
    host: str = ""
    secure: bool = False

    def header(self, name: str) -> str:
        if name.lower() == "host":
            return self.host
        return (self.headers or {}).get(name.lower(), "")


@dataclass(frozen=True)
class Choice:
    upstream: Any
    set_cookie: str | None = None


#: What a policy returns when no upstream is available.
NO_CHOICE = Choice(None)


class Policy(Protocol):
    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice: ...


def rendezvous_hash(pool: Sequence[Candidate], key: str) -> Candidate | None:
    """The available upstream with the highest weight for ``key`` (None if none is)."""
    best: Candidate | None = None
    best_score = -1
    for upstream in pool:
        if not upstream.available():
            continue
        digest = hashlib.blake2b(
            upstream.dial.encode() + b"\x00" + key.encode("utf-8", "surrogateescape"),
            digest_size=8,
        ).digest()
        score = int.from_bytes(digest, "big")
        if score > best_score:
            best, best_score = upstream, score
    return best


def _available(pool: Sequence[Candidate]) -> list[Candidate]:
    return [u for u in pool if u.available()]


class RandomPolicy:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        if len(pool) == 1:  # the usual pool: no list, no random number
            only = pool[0]
            return Choice(only) if only.available() else NO_CHOICE
        candidates = _available(pool)
        return Choice(self.rng.choice(candidates)) if candidates else NO_CHOICE


class RandomChoosePolicy:
    """Pick ``choose`` available upstreams at random, then the least loaded of them."""

    def __init__(self, rng: random.Random, choose: int) -> None:
        self.rng = rng
        self.choose = choose

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        candidates = _available(pool)
        if not candidates:
            return Choice(None)
        sample = self.rng.sample(candidates, min(self.choose, len(candidates)))
        return Choice(min(sample, key=lambda u: u.num_requests))


class LeastConnPolicy:
    """Fewest active requests; ties are broken at random (reservoir sampling)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        best: Candidate | None = None
        least = -1
        ties = 0
        for upstream in pool:
            if not upstream.available():
                continue
            count = upstream.num_requests
            if best is None or count < least:
                best, least, ties = upstream, count, 1
            elif count == least:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best = upstream
        return Choice(best)


class RoundRobinPolicy:
    def __init__(self) -> None:
        self.counter = 0

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        for _ in range(len(pool)):
            self.counter += 1
            upstream = pool[self.counter % len(pool)]
            if upstream.available():
                return Choice(upstream)
        return Choice(None)


class WeightedRoundRobinPolicy:
    """Round robin over a slot sequence where upstream *i* has ``weights[i]`` slots.

    A weight of 0 (or a missing weight) takes the upstream out of rotation; an unavailable
    upstream's slot goes to the next available one in the sequence.
    """

    def __init__(self, weights: list[int]) -> None:
        self.weights = weights
        self.counter = 0

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        slots = [i for i, w in enumerate(self.weights[: len(pool)]) for _ in range(w)]
        if not slots:
            return Choice(None)
        start = self.counter % len(slots)
        self.counter += 1
        for offset in range(len(slots)):
            upstream = pool[slots[(start + offset) % len(slots)]]
            if upstream.available():
                return Choice(upstream)
        return Choice(None)


class FirstPolicy:
    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        return Choice(next((u for u in pool if u.available()), None))


class HashPolicy:
    """Rendezvous hashing on a key taken from the request (peer, client IP, URI)."""

    def __init__(self, key: Callable[[SelectionRequest], str]) -> None:
        self.key = key

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        return Choice(rendezvous_hash(pool, self.key(request)))


class KeyedHashPolicy:
    """Hash on a query parameter or a header; the fallback policy when it is empty."""

    def __init__(self, key: Callable[[SelectionRequest], str], fallback: Policy) -> None:
        self.key = key
        self.fallback = fallback

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        value = self.key(request)
        if not value:
            return self.fallback.select(pool, request)
        return Choice(rendezvous_hash(pool, value))


def cookie_value(secret: str, dial: str) -> str:
    """The sticky cookie for an upstream: hex HMAC-SHA256 of its dial address."""
    return hmac.new(secret.encode(), dial.encode(), hashlib.sha256).hexdigest()


class CookiePolicy:
    """Sticky sessions: the upstream whose HMAC matches the cookie, else the fallback's
    choice, with a Set-Cookie so the client sticks to it."""

    def __init__(self, name: str, secret: str, fallback: Policy) -> None:
        self.name = name
        self.secret = secret
        self.fallback = fallback

    def select(self, pool: Sequence[Candidate], request: SelectionRequest) -> Choice:
        wanted = (request.cookies or {}).get(self.name)
        if wanted:
            for upstream in pool:
                if upstream.available() and hmac.compare_digest(
                    cookie_value(self.secret, upstream.dial), wanted
                ):
                    return Choice(upstream)
        choice = self.fallback.select(pool, request)
        if choice.upstream is None:
            return choice
        attributes = "Secure; SameSite=None" if request.secure else "HttpOnly; SameSite=Lax"
        value = cookie_value(self.secret, choice.upstream.dial)
        return Choice(choice.upstream, f"{self.name}={value}; Path=/; {attributes}")


def _query_value(key: str) -> Callable[[SelectionRequest], str]:
    return lambda request: ",".join((request.query or {}).get(key, []))


def _header_value(field: str) -> Callable[[SelectionRequest], str]:
    return lambda request: request.header(field)


POLICIES = (
    "random",
    "random_choose",
    "least_conn",
    "round_robin",
    "weighted_round_robin",
    "first",
    "ip_hash",
    "client_ip_hash",
    "uri_hash",
    "query",
    "header",
    "cookie",
)


def parse_policy(reader: ObjectReader, rng: random.Random) -> Policy:
    """Build a policy from ``{"policy": NAME, ...options}`` (strict: unknown fields fail)."""
    name = reader.text("policy", "random") or "random"
    policy: Policy
    if name == "random":
        policy = RandomPolicy(rng)
    elif name == "random_choose":
        choose = reader.integer("choose", 2)
        if choose < 2:
            raise ConfigError(reader.at("choose"), "choose must be at least 2")
        policy = RandomChoosePolicy(rng, choose)
    elif name == "least_conn":
        policy = LeastConnPolicy(rng)
    elif name == "round_robin":
        policy = RoundRobinPolicy()
    elif name == "weighted_round_robin":
        weights = reader.array("weights")
        for index, weight in enumerate(weights):
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ConfigError(
                    f"{reader.at('weights')}[{index}]", "expected a non-negative integer"
                )
        policy = WeightedRoundRobinPolicy(list(weights))
    elif name == "first":
        policy = FirstPolicy()
    elif name == "ip_hash":
        policy = HashPolicy(lambda r: r.remote_host)
    elif name == "client_ip_hash":
        policy = HashPolicy(lambda r: r.client_ip)
    elif name == "uri_hash":
        policy = HashPolicy(lambda r: r.uri)
    elif name == "query":
        key = reader.text("key")
        if not key:
            raise ConfigError(reader.at("key"), "the query policy needs a key")
        policy = KeyedHashPolicy(_query_value(key), _fallback(reader, rng))
    elif name == "header":
        field = reader.text("field")
        if not field:
            raise ConfigError(reader.at("field"), "the header policy needs a field")
        policy = KeyedHashPolicy(_header_value(field), _fallback(reader, rng))
    elif name == "cookie":
        policy = CookiePolicy(
            reader.text("name", "lb") or "lb", reader.text("secret"), _fallback(reader, rng)
        )
    else:
        plugin = find_plugins(ISelectionPolicyFactory).get(name)
        if plugin is None:
            raise ConfigError(
                reader.at("policy"),
                f"unknown selection policy {name!r} (one of: {', '.join(POLICIES)})",
            )
        policy = plugin.build(reader, rng)
    reader.done()
    return policy


def _fallback(reader: ObjectReader, rng: random.Random) -> Policy:
    if reader.has("fallback"):
        return parse_policy(reader.reader("fallback"), rng)
    reader.ignore("fallback")
    return RandomPolicy(rng)
