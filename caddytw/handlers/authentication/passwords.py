"""HTTP Basic credentials and bcrypt checks that keep the reactor free.

A bcrypt comparison costs tens of milliseconds to a second by design, so it runs in
a thread pool; successful checks are remembered in a bounded LRU (keyed by a SHA-256
of the hash and the password, never the password itself) so a client that sends the
same credentials on every request pays once. Concurrent checks of the same pair share
one computation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import bcrypt
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

BCRYPT_HASH = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads no further (Go compares this prefix too)

log = Logger()

RunBlocking = Callable[[Callable[[], bool]], "Deferred[bool]"]


def parse_basic_authorization(value: str | None) -> tuple[str, str] | None:
    """Go's ``Request.BasicAuth``: ``Basic base64(user:password)``, scheme caseless."""
    if not value or len(value) < 6 or value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    user, colon, password = decoded.decode("utf-8", "surrogateescape").partition(":")
    if not colon:
        return None
    return user, password


def bcrypt_matches(hashed: bytes, password: bytes) -> bool:
    """Compare in constant time; a malformed hash is a mismatch, not a crash."""
    try:
        return bool(bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed))
    except ValueError:
        return False


def thread_runner(reactor: Any) -> RunBlocking:
    """Run blocking checks in the reactor's thread pool; a reactor without threads
    (an in-memory test reactor) runs them inline."""
    get_pool = getattr(reactor, "getThreadPool", None)
    if get_pool is None:
        return lambda work: maybeDeferred(work)

    from twisted.internet.threads import deferToThreadPool

    def run(work: Callable[[], bool]) -> Deferred[bool]:
        return deferToThreadPool(reactor, get_pool(), work)

    return run


class PasswordChecker:
    """bcrypt checks off the reactor thread, with a bounded memory of successes."""

    def __init__(self, run_blocking: RunBlocking, cache_size: int = 1000) -> None:
        self._run = run_blocking
        self._cache_size = cache_size
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._pending: dict[bytes, list[Deferred[bool]]] = {}

    @staticmethod
    def _key(hashed: bytes, password: bytes) -> bytes:
        return hashlib.sha256(hashed + b"\x00" + password).digest()

    def known_good(self, hashed: bytes, password: bytes) -> bool:
        """True when this exact pair was verified before (and refreshes it)."""
        key = self._key(hashed, password)
        if key in self._good:
            self._good.move_to_end(key)
            return True
        return False

    def check(self, hashed: bytes, password: bytes, *, remember: bool = True) -> Deferred[bool]:
        """Verify in a thread; fires with the result (never with a failure)."""
        key = self._key(hashed, password)
        result: Deferred[bool] = Deferred()
        waiters = self._pending.get(key)
        if waiters is not None:
            waiters.append(result)
            return result
        self._pending[key] = [result]

        def settle(outcome: Any) -> None:
            if isinstance(outcome, Failure):
                log.failure("password check failed", failure=outcome)
            same = outcome is True
            if same and remember:
                self._remember(key)
            for waiter in self._pending.pop(key, []):
                waiter.callback(same)

        self._run(lambda: bcrypt_matches(hashed, password)).addBoth(settle)
        return result

    def _remember(self, key: bytes) -> None:
        self._good[key] = None
        self._good.move_to_end(key)
        while len(self._good) > self._cache_size:
            self._good.popitem(last=False)

    def __len__(self) -> int:
        return len(self._good)
