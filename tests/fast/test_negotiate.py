"""What a connection carries is decided once, in :mod:`caddytw.wire.negotiate`: pure
decisions checked over their whole input space (real connections are covered by the
h2c, HTTP/2 and ACME tests)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from caddytw.wire.negotiate import (
    ACME_TLS_ALPN,
    H2_PREFACE,
    Carried,
    choose,
    looks_first,
    select_alpn,
)

ALPN = st.sampled_from([None, b"h2", b"http/1.1", ACME_TLS_ALPN])


@given(alpn=ALPN, secure=st.booleans(), h2c=st.booleans(), data=st.binary(max_size=40))
def test_acme_tls_carries_nothing_and_h2_alpn_is_h2(
    alpn: bytes | None, secure: bool, h2c: bool, data: bytes
) -> None:
    carried = choose(alpn, secure, h2c, data)
    if alpn == ACME_TLS_ALPN:
        assert carried is Carried.NOTHING
    elif alpn == b"h2":
        assert carried is Carried.H2
    elif secure or not h2c:
        assert carried is Carried.HTTP1  # TLS without h2, or h2c not allowed


@given(cut=st.integers(0, len(H2_PREFACE)), rest=st.binary(max_size=20))
def test_h2c_preface_in_pieces(cut: int, rest: bytes) -> None:
    """Every strict prefix of the preface waits; the whole preface (and what follows)
    is HTTP/2; without h2c it is all HTTP/1.1 (a PRI request, answered as such)."""
    partial = H2_PREFACE[:cut]
    expected = Carried.UNDECIDED if cut < len(H2_PREFACE) else Carried.H2
    assert choose(None, False, True, partial) is expected
    assert choose(None, False, True, H2_PREFACE + rest) is Carried.H2
    assert choose(None, False, False, partial) is Carried.HTTP1


@given(data=st.binary(min_size=1, max_size=40))
def test_anything_else_on_h2c_is_http1(data: bytes) -> None:
    if H2_PREFACE.startswith(data) or data.startswith(H2_PREFACE):
        return
    assert choose(None, False, True, data) is Carried.HTTP1


def test_only_tls_or_h2c_connections_look_at_their_first_bytes() -> None:
    assert looks_first(True, False) and looks_first(False, True)
    assert not looks_first(False, False)


@given(
    offered=st.lists(st.sampled_from([b"h2", b"http/1.1"]), unique=True),
    client=st.lists(st.sampled_from([b"h2", b"http/1.1", ACME_TLS_ALPN, b"h3"]), unique=True),
    pending=st.booleans(),
)
def test_alpn_is_servers_preference_or_acme_when_pending(
    offered: list[bytes], client: list[bytes], pending: bool
) -> None:
    chosen = select_alpn(offered, client, pending)
    if pending and ACME_TLS_ALPN in client:
        assert chosen == ACME_TLS_ALPN
    else:
        shared = [p for p in offered if p in client]
        assert chosen == (shared[0] if shared else None)
