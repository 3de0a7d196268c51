"""``authentication`` with the ``http_basic`` provider: 401 until valid credentials.

Caddy's behaviour: missing or wrong credentials give a 401 error (so ``errors.routes``
can answer it) with ``WWW-Authenticate: Basic realm="<realm>"``; success sets
``{http.auth.user.id}`` and continues the chain. An unknown user costs a comparison
against a real account's hash, so timing does not tell which users exist.

The bcrypt comparison runs in a thread: the handler answers ``NOT_DONE_YET`` and
resumes the chain from the callback. Credentials already verified are remembered
(bounded), so later requests continue synchronously.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from twisted.python.failure import Failure

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.handlers.authentication.passwords import (
    BCRYPT_HASH,
    PasswordChecker,
    parse_basic_authorization,
    thread_runner,
)
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer, dispatch
from caddytw.http.errors import HandlerError
from caddytw.http.placeholders import split_template
from caddytw.http.request import NOT_DONE_YET, CaddyRequest
from caddytw.http.routing import LeafResource

USER_ID = "http.auth.user.id"
#: One password checker (its cache of verified hashes) per process, across reloads.
CHECKER_KEY = "authentication.password_checker"
NOT_AUTHENTICATED = "not authenticated"


def render_global(text: str) -> str:
    """Placeholders Caddy fills at provision time (no request yet): ``{env.*}``."""
    out = []
    for is_placeholder, part in split_template(text):
        if not is_placeholder:
            out.append(part)
        elif part.startswith("env."):
            out.append(os.environ.get(part[4:], ""))
    return "".join(out)


@dataclass(frozen=True)
class BasicAuth:
    """The ``http_basic`` provider's settings."""

    accounts: dict[str, bytes]
    realm: str

    @property
    def decoy_hash(self) -> bytes | None:
        """A real hash to compare against for unknown users (same cost, same time)."""
        return next(iter(self.accounts.values()), None)

    @property
    def challenge(self) -> bytes:
        return f'Basic realm="{self.realm}"'.encode("latin-1", "replace")


def parse_hash_password(value: str, path: str) -> bytes:
    """A bcrypt hash, raw (``$2a$...``) or base64-encoded as older Caddyfiles wrote it."""
    if value.startswith("$"):
        hashed = value.encode("latin-1", "replace")
    else:
        try:
            hashed = base64.b64decode(value.encode("latin-1", "replace"), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(path, "base64-decoding password: illegal base64 data") from None
    if BCRYPT_HASH.fullmatch(hashed) is None:
        raise ConfigError(path, "not a bcrypt hash (expected $2a$, $2b$ or $2y$ and a cost)")
    return hashed


def parse_http_basic(data: Any, path: str) -> BasicAuth:
    reader = ObjectReader(data, path)
    hash_reader = reader.reader("hash")
    algorithm = hash_reader.text("algorithm", "bcrypt") or "bcrypt"
    hash_reader.done()
    if algorithm != "bcrypt":
        raise ConfigError(
            hash_reader.at("algorithm"),
            f"unsupported hash algorithm {algorithm!r} (caddytw verifies bcrypt hashes)",
        )
    reader.mapping("hash_cache")  # always on here: successful checks are remembered
    realm = reader.text("realm") or "restricted"
    accounts: dict[str, bytes] = {}
    for index, item in enumerate(reader.array("accounts")):
        account_path = join_path(reader.at("accounts"), index)
        account = ObjectReader(item, account_path)
        username = render_global(account.text("username"))
        password = render_global(account.text("password"))
        salt = render_global(account.text("salt"))
        account.done()
        if not username or not password:
            raise ConfigError(account_path, f"account {index}: username and password are required")
        if username in accounts:
            raise ConfigError(
                join_path(account_path, "username"),
                f"account {index}: username is not unique: {username}",
            )
        if salt:
            try:
                base64.b64decode(salt.encode("latin-1", "replace"), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    join_path(account_path, "salt"), "base64-decoding salt: illegal base64 data"
                ) from None
        accounts[username] = parse_hash_password(password, join_path(account_path, "password"))
    reader.done()
    return BasicAuth(accounts, realm)


class _Resume(LeafResource):
    """Carries the chain on from a callback, through :func:`caddytw.http.dispatch.dispatch`."""

    def __init__(self, step: Callable[[CaddyRequest], Answer]) -> None:
        self.step = step

    def render(self, request: CaddyRequest) -> Answer:
        return self.step(request)


class Authentication(LeafResource):
    def __init__(self, provider: BasicAuth | None, checker: PasswordChecker, next: Handler) -> None:
        self.provider = provider
        self.checker = checker
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        provider = self.provider
        if provider is None:
            raise HandlerError(401, NOT_AUTHENTICATED)
        values = request.requestHeaders.getRawHeaders(b"authorization") or [b""]
        credentials = parse_basic_authorization(values[0].decode("latin-1"))
        if credentials is None:
            return self.deny(request)
        username, password_text = credentials
        password = password_text.encode("utf-8", "surrogateescape")
        hashed = provider.accounts.get(username)
        if hashed is not None and self.checker.known_good(hashed, password):
            return self.grant(request, username)
        candidate = hashed if hashed is not None else provider.decoy_hash
        if candidate is None:
            return self.deny(request)
        outcome: list[Any] = []
        checked = self.checker.check(candidate, password, remember=hashed is not None)
        checked.addBoth(outcome.append)
        if outcome:  # verified inline (a reactor without threads)
            return self.decide(request, username, hashed is not None, outcome[0])

        def resume(_: Any) -> None:
            if request.client_gone:
                return
            step = _Resume(lambda req: self.decide(req, username, hashed is not None, outcome[0]))
            dispatch(request, step)

        checked.addCallback(resume)
        return NOT_DONE_YET

    def decide(self, request: CaddyRequest, username: str, exists: bool, same: object) -> Answer:
        if isinstance(same, Failure) or same is not True or not exists:
            return self.deny(request)
        return self.grant(request, username)

    def grant(self, request: CaddyRequest, username: str) -> Answer:
        request.caddy_vars[USER_ID] = username
        return self.next.render(request)

    def deny(self, request: CaddyRequest) -> NoReturn:
        assert self.provider is not None
        request.responseHeaders.setRawHeaders(b"www-authenticate", [self.provider.challenge])
        raise HandlerError(401, NOT_AUTHENTICATED)


def build(config: ObjectReader, context: BuildContext, next: Handler) -> Authentication:
    providers = config.reader("providers")
    provider: BasicAuth | None = None
    for name, data in providers.data.items():
        providers.ignore(name)
        if name != "http_basic":
            raise ConfigError(
                providers.at(name), f"unknown module: http.authentication.providers.{name}"
            )
        provider = parse_http_basic(data, providers.at(name))
    config.done()
    checker = context.shared.get(CHECKER_KEY)
    if not isinstance(checker, PasswordChecker):
        checker = context.shared[CHECKER_KEY] = PasswordChecker(thread_runner(context.reactor))
    return Authentication(provider, checker, next)
