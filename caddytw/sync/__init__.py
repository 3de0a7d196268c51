"""File sync, server side (the ``file_sync`` handler), and the parts ``synclient`` shares.

Shared with ``synclient``: ``protocol`` (the JSON messages),
``batch`` (small files framed on the wire), ``chunks`` (content-defined chunks and their
hash tree), ``compression`` (zstd on the wire), ``folder`` and ``localfs`` (the blocking
file-system layer both ends use), and ``encoded``'s ``EncodingPump`` (the client
compresses its uploads with the producer the server compresses its answers with).

Server only: ``store``/``core``/``index``/``pgindex``/``home`` (the folder and its index),
``resource``, ``delta``, ``batch_api``, ``events``, ``transfer`` (the HTTP API),
``access`` (who may call it), ``scanner`` (changes made by other programs).
"""
