"""The ``pki`` global option, the ``acme_server`` directive and the ``pki`` app
they build, as Caddy 2.6.2 adapts them.

caddytw has no PKI app at runtime (``validate`` says so, naming the path);
adapting them exactly still lets ``caddytw adapt`` stand in for ``caddy adapt``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .directives.registry import ConfigValue, Helper, directive
from .dispenser import Dispenser

DEFAULT_CA_ID = "local"
_CA_NAMES = {"name": "name", "root_cn": "root_common_name"}
_CA_NAMES["intermediate_cn"] = "intermediate_common_name"
_KEYPAIR_NAMES = {"cert": "certificate", "key": "private_key", "format": "format"}


def _one(d: Dispenser) -> str:
    if not d.next_arg():
        raise d.arg_err()
    return d.val


def _key_pair(d: Dispenser, which: str) -> dict[str, str]:
    pair: dict[str, str] = {}
    nesting = d.nesting
    while d.next_block(nesting):
        key = _KEYPAIR_NAMES.get(d.val)
        if key is None:
            d.fail(f"unrecognized pki ca {which} option '{d.val}'")
        pair[key] = _one(d)
    return pair


def parse_pki_option(d: Dispenser, _existing: Any) -> dict[str, dict[str, Any]]:
    """``pki { ca [id] { name, root_cn, intermediate_cn, root {...}, intermediate {...} } }``:
    ``{ca_id: CA JSON}``."""
    cas: dict[str, dict[str, Any]] = {}
    while d.next():
        nesting = d.nesting
        while d.next_block(nesting):
            if d.val != "ca":
                d.fail(f"unrecognized pki option '{d.val}'")
            ca_id = DEFAULT_CA_ID
            if d.next_arg():
                ca_id = d.val
                if d.next_arg():
                    raise d.arg_err()
            ca: dict[str, Any] = {}
            inner = d.nesting
            while d.next_block(inner):
                sub = d.val
                if sub in _CA_NAMES:
                    ca[_CA_NAMES[sub]] = _one(d)
                elif sub in ("root", "intermediate"):
                    ca.setdefault(sub, {}).update(_key_pair(d, sub))
                else:
                    d.fail(f"unrecognized pki ca option '{sub}'")
            cas[ca_id] = ca
    return cas


def build_pki_app(
    piles: Iterable[Mapping[str, list[ConfigValue]]], options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The ``pki`` app: CAs from the option, then those ``acme_server`` names."""
    skip_trust = "skip_install_trust" in options
    cas = copy.deepcopy(options.get("pki") or {})
    for pile in piles:
        for value in pile.get("pki.ca", []):
            cas.setdefault(value.value, {})
    if not cas and skip_trust:
        cas[DEFAULT_CA_ID] = {}
    if skip_trust:
        for ca in cas.values():
            ca["install_trust"] = False
    return {"certificate_authorities": cas} if cas else None


@directive("acme_server")
def parse_acme_server(h: Helper) -> list[ConfigValue]:
    """``acme_server [matcher] { ca ID }`` (2.6.2 ignores other subdirectives)."""
    d = h.d
    if not d.next():
        raise d.arg_err()
    matcher = h.extract_matcher_set()
    handler: dict[str, Any] = {"handler": "acme_server"}
    ca_id = ""
    while d.next():
        if d.next_arg():
            raise d.arg_err()
        while d.next_block(0):
            if d.val == "ca":
                args = d.remaining_args()
                if len(args) != 1:
                    raise d.arg_err()
                ca_id = handler["ca"] = args[0]
    values = h.new_route(matcher, handler)
    if ca_id:
        values.append(ConfigValue("pki.ca", ca_id))
    return values
