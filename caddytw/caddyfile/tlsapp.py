"""The ``tls`` app Caddy's adapter derives from site blocks and options.

Automation policies (which issuer gets which names: public names go to ACME,
``localhost``/IPs/``*.local`` to the internal CA), loaded certificate files,
and the global ACME defaults (``email``, ``acme_ca``, ``acme_ca_root``).
"""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import TYPE_CHECKING, Any

from caddytw.config.netaddr import uses_port_other_than

from .directives.registry import go_stable_sort
from .errors import CaddyfileError

if TYPE_CHECKING:
    from .siteblocks import Pairing, SiteBlock

__all__ = ["build_tls_app", "subject_is_public"]

AP = dict[str, Any]


def _is_ip(subject: str) -> bool:
    try:
        ipaddress.ip_address(subject.strip("[]"))
    except ValueError:
        return False
    return True


def _is_internal(subject: str) -> bool:
    return (
        subject == "localhost"
        or subject.endswith(".localhost")
        or subject.endswith(".local")
        or subject.endswith(".home.arpa")
    )


def subject_is_public(subject: str, on_demand: bool = False) -> bool:
    return (
        not _is_ip(subject) and not _is_internal(subject) and (subject.count("*.") < 2 or on_demand)
    )


def _qualifies_for_cert(subject: str) -> bool:
    return (
        bool(subject.strip())
        and not subject.startswith(".")
        and not subject.endswith(".")
        and not any(c in subject for c in "()[]{}<> \t\n\"\\!@#$%^&|;'+=")
    ) or _is_ip(subject)


def _all_public(ap: AP) -> bool:
    return all(subject_is_public(s, bool(ap.get("on_demand"))) for s in ap.get("subjects", []))


def _match_wildcard(subject: str, wildcard: str) -> bool:
    if subject == wildcard:
        return True
    if "*" not in wildcard:
        return False
    # certmagic.MatchWildcard: replace labels left to right, one more each time,
    # so "www.foo.tld" is matched by "*.foo.tld" and by "*.*.tld".
    labels = subject.split(".")
    for index, label in enumerate(labels):
        if not label:
            continue
        labels[index] = "*"
        if ".".join(labels) == wildcard:
            return True
    return False


def _is_subset(a: AP, b: AP) -> bool:
    if not b.get("subjects"):
        return True
    if not a.get("subjects"):
        return False
    return all(any(_match_wildcard(s, w) for w in b["subjects"]) for s in a["subjects"])


def _shadows(i: int, aps: list[AP]) -> int:
    for j in range(i + 1, len(aps)):
        if _is_subset(aps[i], aps[j]):
            return j
    return -1


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _consolidate(aps: list[AP]) -> list[AP]:
    def less(a: AP, b: AP) -> bool:
        if _is_subset(a, b):
            return True
        if _is_subset(b, a):
            return False
        return len(a.get("subjects", [])) > len(b.get("subjects", []))

    aps = go_stable_sort(aps, less)
    empty_count = 0
    orig = len(aps)
    kept: list[AP] = []
    for ap in aps:
        if not {k: v for k, v in ap.items() if k != "subjects"}:
            empty_count += 1
            if not _all_public(ap):
                continue
        kept.append(ap)
    if empty_count == orig:
        return []
    aps = kept
    i = 0
    while i < len(aps):
        restart = False
        j = i + 1
        while j < len(aps):
            if _canon(aps[i]) == _canon(aps[j]):
                del aps[j]
                restart = True
                break
            same = all(
                _canon(aps[i].get(k)) == _canon(aps[j].get(k))
                for k in ("issuers", "storage", "must_staple", "key_type", "on_demand")
            )
            if same:
                if aps[i].get("subjects") and not aps[j].get("subjects"):
                    if _shadows(i, aps) >= j:
                        del aps[i]
                        restart = True
                        break
                else:
                    for s in aps[j].get("subjects", []):
                        if s not in aps[i].setdefault("subjects", []):
                            aps[i]["subjects"].append(s)
                    del aps[j]
                    continue
            j += 1
        if not restart:
            i += 1
    return aps


def _default_issuers(acme: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    base = dict(acme or {})
    base.pop("module", None)
    return [{"module": "acme", **base}, {"module": "zerossl", **base}]


def _fill_acme_defaults(issuer: dict[str, Any], options: dict[str, Any]) -> None:
    if issuer.get("module") not in ("acme", "zerossl"):
        return
    if "email" in options and not issuer.get("email"):
        issuer["email"] = options["email"]
    if "acme_ca" in options and not issuer.get("ca"):
        issuer["ca"] = options["acme_ca"]
    root = options.get("acme_ca_root")
    if root is not None and root not in issuer.get("trusted_roots_pem_files", []):
        issuer.setdefault("trusted_roots_pem_files", []).append(root)
    if "acme_eab" in options and "external_account" not in issuer:
        issuer["external_account"] = dict(options["acme_eab"])
    if "preferred_chains" in options and "preferred_chains" not in issuer:
        issuer["preferred_chains"] = copy.deepcopy(options["preferred_chains"])


_GLOBAL_ACME_DEFAULTS = (
    "email",
    "acme_ca",
    "acme_ca_root",
    "acme_dns",
    "acme_eab",
    "preferred_chains",
)


def _base_policy(options: dict[str, Any], always: bool) -> AP | None:
    has_local = "local_certs" in options
    has_key_type = "key_type" in options
    has_issuers = "cert_issuer" in options
    if not (has_local or has_key_type or has_issuers):
        return {} if always else None
    ap: AP = {}
    if has_key_type:
        ap["key_type"] = options["key_type"]
    if has_issuers and has_local:
        raise CaddyfileError(
            "Caddyfile",
            0,
            "global options are ambiguous: local_certs is confusing when combined with "
            "cert_issuer, because local_certs is also a specific kind of issuer",
        )
    if has_issuers:
        ap["issuers"] = copy.deepcopy(options["cert_issuer"])
    elif has_local:
        ap["issuers"] = [{"module": "internal"}]
    return ap


def build_tls_app(
    pairings: list[Pairing], options: dict[str, Any], http_port: str
) -> dict[str, Any]:
    """The ``apps.tls`` object, or ``{}`` when nothing needs configuring."""
    auto_https = options.get("auto_https", "on")
    shared_with_hostless: list[str] = []
    if auto_https != "off":
        for pair in pairings:
            for sb in pair.blocks:
                if any(a.host == "" for a in sb.addrs):
                    hostless = next(a for a in sb.addrs if a.host == "")
                    for other in sb.addrs:
                        if other.original == hostless.original:
                            continue
                        if (
                            other.host
                            and other.scheme != "http"
                            and other.port != http_port
                            and other.host not in shared_with_hostless
                        ):
                            shared_with_hostless.append(other.host)

    policies: list[AP] = []
    catch_all = _base_policy(options, False)
    if catch_all is not None:
        policies.append(catch_all)
    loaders: list[dict[str, Any]] = []

    for pair in pairings:
        if not uses_port_other_than(pair.addresses, http_port):
            continue
        for sb in pair.blocks:
            if all(a.scheme == "http" for a in sb.addrs):
                continue
            ap = _base_policy(options, True)
            assert ap is not None
            hosts = sb.hosts()
            if not hosts and catch_all is not None:
                ap = catch_all
            if "tls.on_demand" in sb.pile:
                ap["on_demand"] = True
            if "tls.key_type" in sb.pile:
                ap["key_type"] = sb.pile["tls.key_type"][0].value
            if "tls.cert_issuer" in sb.pile:
                issuers = [copy.deepcopy(v.value) for v in sb.pile["tls.cert_issuer"]]
                if ap is catch_all and _canon(ap.get("issuers")) != _canon(issuers):
                    file, line = _where(sb)
                    raise CaddyfileError(
                        file,
                        line,
                        "automation policy from site block is also default/catch-all policy "
                        "because of key without hostname, and the two are in conflict",
                    )
                ap["issuers"] = issuers
            for cv in sb.pile.get("tls.cert_manager", []):
                ap.setdefault("get_certificate", []).append(copy.deepcopy(cv.value))
            if not hosts and catch_all is None:
                catch_all = ap
            ap["subjects"] = sorted(sb.hosts_not_http(http_port))
            ap2: AP | None = None
            if not ap.get("issuers"):
                internal: list[str] = []
                external: list[str] = []
                for s in ap["subjects"]:
                    if not _qualifies_for_cert(s):
                        file, line = _where(sb)
                        raise CaddyfileError(
                            file, line, f"subject does not qualify for certificate: '{s}'"
                        )
                    (
                        external if subject_is_public(s, bool(ap.get("on_demand"))) else internal
                    ).append(s)
                if external and internal:
                    ap["subjects"] = external
                    ap2 = copy.deepcopy(ap)
                    ap2["subjects"] = internal
                    ap2["issuers"] = [{"module": "internal"}]
                    ap2["_raw"] = True
            policies.append(ap)
            if ap2 is not None:
                policies.append(ap2)
            for cv in sb.pile.get("tls.cert_loader", []):
                loaders.extend(cv.value)

    tls: dict[str, Any] = {}
    certificates: dict[str, Any] = {}
    if loaders:
        certificates["load_files"] = loaders
    automate: list[str] = []
    internal_ap: AP = {"issuers": [{"module": "internal"}], "_raw": True}
    if auto_https != "off":
        for host in shared_with_hostless:
            automate.append(host)
            if not subject_is_public(host):
                internal_ap.setdefault("subjects", []).append(host)
    if automate:
        certificates["automate"] = automate
    if internal_ap.get("subjects"):
        policies.append(internal_ap)

    if policies or automate or loaders:
        has_defaults = any(k in options for k in _GLOBAL_ACME_DEFAULTS)
        if has_defaults:
            for ap in policies:
                if not ap.get("issuers") and _all_public(ap):
                    ca = options.get("acme_ca")
                    if ca is not None:
                        module = "zerossl" if "zerossl" in ca else "acme"
                        ap["issuers"] = [{"module": module}]
                    else:
                        ap["issuers"] = _default_issuers()
        for ap in policies:
            if not ap.get("_raw"):
                for issuer in ap.get("issuers", []):
                    _fill_acme_defaults(issuer, options)
            ap.pop("_raw", None)
        # Policies may be shared objects (catch-all); work on copies from here.
        policies = [copy.deepcopy(ap) for ap in policies]
        for ap in policies:
            if not ap.get("subjects"):
                ap.pop("subjects", None)
        policies = _consolidate(policies)
        seen: set[str] = set()
        for ap in policies:
            for s in ap.get("subjects", []):
                if s in seen:
                    raise CaddyfileError(
                        "Caddyfile",
                        0,
                        "hostname appears in more than one automation policy, making "
                        f"certificate management ambiguous: {s}",
                    )
                seen.add(s)
        if policies:
            tls["automation"] = {"policies": policies}
    for option, key in _AUTOMATION_OPTIONS:
        if option in options:
            tls.setdefault("automation", {})[key] = copy.deepcopy(options[option])
    if certificates:
        tls["certificates"] = certificates
    return tls


_AUTOMATION_OPTIONS = (
    ("on_demand_tls", "on_demand"),
    ("storage_clean_interval", "storage_clean_interval"),
    ("renew_interval", "renew_interval"),
    ("ocsp_interval", "ocsp_interval"),
)


def _where(sb: SiteBlock) -> tuple[str, int]:
    toks = sb.block.key_tokens
    return (toks[0].file, toks[0].line) if toks else ("Caddyfile", 0)
