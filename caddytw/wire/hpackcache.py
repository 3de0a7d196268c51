"""HPACK header blocks remembered while the compression context does not change.

Most of a small HTTP/2 response's CPU on top of h2 is ``hpack`` in pure Python:
encoding the response headers (a linear search of the dynamic table per field) and
decoding the request's. Yet on a busy connection the same header list recurs (the same
file within the same second, h2load's or a browser's identical requests) and, once its
fields are in the dynamic table, encodes to the same indexed block without changing
the table. :class:`CachingEncoder` and :class:`CachingDecoder` remember such blocks.

A remembered block is reused only while the dynamic table is exactly as it was: every
addition puts a *new* tuple at the front of hpack's ``dynamic_entries`` (and keeps it
until evicted), so "the same front entry object, the same number of entries, the same
maximum size" means "no addition, eviction or resize since". The cache holds a
reference to that front entry, so its identity cannot be recycled by a new object.
Only blocks whose own coding left the table unchanged are remembered (a block that
added fields is coded again next time, then as indexed fields); never-indexed fields
(``authorization``, short cookies: h2 marks them) and pending table-size updates always
take hpack's own path. Each cache is per connection (HPACK contexts are) and bounded.
"""

from __future__ import annotations

from typing import Any, cast

from hpack import Decoder, Encoder, HeaderTuple

#: Distinct header blocks remembered per connection and direction.
MAX_BLOCKS = 256

_INDEXABLE = (tuple, HeaderTuple)

State = tuple[object, int, int]


def _table_state(table: Any) -> State:
    entries = table.dynamic_entries
    return (entries[0] if entries else None, len(entries), table.maxsize)


def _same(state: State, other: State) -> bool:
    return state[0] is other[0] and state[1] == other[1] and state[2] == other[2]


class CachingEncoder(Encoder):  # type: ignore[misc]
    """hpack's encoder, answering a repeated header list from the cache when the
    compression context is unchanged (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], tuple[bytes, State, tuple[type, ...]]] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if type(headers) is list and huffman and not table.resized:
            # A repeat is answered before any field is checked: the fields were checked
            # when the block was remembered, and an equal list is the same fields (bytes
            # equal to bytes, or a buffer with the same bytes, which hpack codes alike),
            # the same tuple classes (never-indexed is a class) and the same table.
            try:
                cached = self._blocks.get(tuple(headers))
            except TypeError:  # unhashable fields: hpack's own path judges them
                cached = None
            if (
                cached is not None
                and cached[2] == tuple(map(type, headers))
                and _same(cached[1], _table_state(table))
            ):
                return cached[0]
        if isinstance(headers, dict) or not huffman or table.resized:
            return bytes(super().encode(headers, huffman))
        items = list(headers)
        for item in items:
            if (
                type(item) not in _INDEXABLE
                or len(item) != 2
                or type(item[0]) is not bytes
                or type(item[1]) is not bytes
            ):
                return bytes(super().encode(items, huffman))
        key = tuple(items)
        before = _table_state(table)
        cached = self._blocks.get(key)
        if cached is not None and _same(cached[1], before):
            return cached[0]
        block = bytes(super().encode(items, huffman))
        if _same(_table_state(table), before):
            if len(self._blocks) >= MAX_BLOCKS:
                self._blocks.clear()
            self._blocks[key] = (block, before, tuple(map(type, items)))
        return block


class CachingDecoder(Decoder):  # type: ignore[misc]
    """hpack's decoder, answering a repeated header block from the cache when the
    compression context is unchanged (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lists: dict[
            tuple[bytes, bool, int, int], tuple[list[Any], tuple[object, int, int]]
        ] = {}

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        key = (bytes(data), raw, self.max_header_list_size, self.max_allowed_table_size)
        table = self.header_table
        before = _table_state(table)
        cached = self._lists.get(key)
        if cached is not None and _same(cached[1], before):
            return list(cached[0])
        headers = list(super().decode(data, raw))
        if _same(_table_state(table), before):
            if len(self._lists) >= MAX_BLOCKS:
                self._lists.clear()
            self._lists[key] = (headers, before)
        return list(headers)


def install(conn: Any) -> None:
    """Make an ``h2`` connection's encoder and decoder caching, keeping their state
    (sizes h2 has already configured) by switching their class in place."""
    encoder: Any = conn.encoder
    decoder: Any = conn.decoder
    if type(encoder) is Encoder:
        encoder.__class__ = CachingEncoder
        cast(CachingEncoder, encoder)._blocks = {}
    if type(decoder) is Decoder:
        decoder.__class__ = CachingDecoder
        cast(CachingDecoder, decoder)._lists = {}
