"""Server blocks -> Caddy JSON config (Caddy's ``httpcaddyfile.ServerType.Setup``).

Steps, in Caddy's order: global options; placeholder shorthands; named
matchers and directives per site block (results piled by class); site keys
mapped to listener addresses; blocks sharing listeners grouped into
servers ``srv0``, ``srv1``...; per server the host matchers, TLS connection
policies, automatic-HTTPS exceptions and logs; then the ``tls`` app, logging,
admin and storage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from caddytw.config.netaddr import uses_port_other_than

from .addresses import AddressError, listener_addresses, normalize, parse_address
from .directives import AdaptContext, ConfigValue, Helper, build_subroute, run_directive
from .directives.registry import Subroute, consolidate_routes, go_stable_sort
from .dispenser import Dispenser
from .errors import CaddyfileError
from .formatter import formatting_difference
from .matchers import parse_matcher_definitions
from .options import GLOBAL_OPTIONS, apply_order
from .parser import ServerBlock, parse
from .pkiapp import build_pki_app
from .placeholders import expand
from .siteblocks import Pairing, SiteBlock
from .tlsapp import build_tls_app

__all__ = ["adapt"]


def _block_location(block: ServerBlock) -> tuple[str, int]:
    tok = block.key_tokens[0] if block.key_tokens else None
    if tok is None and block.segments:
        tok = block.segments[0][0]
    return (tok.file, tok.line) if tok else ("Caddyfile", 0)


def _fail(block: ServerBlock, message: str) -> CaddyfileError:
    file, line = _block_location(block)
    return CaddyfileError(file, line, message)


def _global_options(blocks: list[ServerBlock], ctx: AdaptContext) -> list[ServerBlock]:
    if not blocks or blocks[0].keys:
        return blocks
    opts = ctx.options
    for seg in blocks[0].segments:
        name = seg[0].text
        fn = GLOBAL_OPTIONS.get(name)
        if fn is None:
            raise CaddyfileError(seg[0].file, seg[0].line, f"unrecognized global option: {name}")
        val = fn(Dispenser(list(seg)), opts.get(name))
        if name == "servers":
            opts.setdefault("servers", []).append(val)
        else:
            opts[name] = val
    servers = opts.get("servers")
    if servers:
        servers.sort(key=lambda s: -len(s["listener_address"]))
        seen: set[str] = set()
        for s in servers:
            if s["listener_address"] in seen:
                raise CaddyfileError(
                    blocks[0].segments[0][0].file,
                    0,
                    "cannot have 'servers' global options with duplicate listener addresses: "
                    + s["listener_address"],
                )
            seen.add(s["listener_address"])
    if "order" in opts:
        ctx.order = apply_order(ctx.order, opts["order"])
    return blocks[1:]


def _expand_block(block: ServerBlock) -> None:
    block.segments = [[t.with_text(expand(t.text)) for t in seg] for seg in block.segments]


def _run_block(block: ServerBlock, ctx: AdaptContext) -> dict[str, list[ConfigValue]]:
    defs: dict[str, Any] = {}
    for seg in block.segments:
        name = seg[0].text
        if name.startswith("@"):
            parse_matcher_definitions(
                Dispenser([t for s in block.segments if s[0].text == name for t in s]), defs
            )
    pile: dict[str, list[ConfigValue]] = {}
    hint = ""
    if not block.has_braces:
        hint = (
            "\nDid you mean to define a second site? If so, you must use curly braces "
            "around each site to separate their configurations."
        )
    for seg in block.segments:
        if seg[0].text.startswith("@"):
            continue
        helper = Helper(Dispenser(list(seg)), ctx, defs, block.segments)
        for value in run_directive(helper, seg, hint):
            pile.setdefault(value.cls, []).append(value)
    return pile


def _ports(options: Mapping[str, Any]) -> tuple[str, str]:
    return str(options.get("http_port", 80)), str(options.get("https_port", 443))


def _map_addresses(
    blocks: list[ServerBlock], piles: list[dict[str, list[ConfigValue]]], ctx: AdaptContext
) -> dict[str, list[SiteBlock]]:
    http_port, https_port = _ports(ctx.options)
    sbmap: dict[str, list[SiteBlock]] = {}
    for i, (block, pile) in enumerate(zip(blocks, piles, strict=False)):
        binds = [h for cv in pile.get("bind", []) for h in cv.value]
        if not binds:
            binds = list(ctx.options.get("default_bind") or [])
        addr_to_keys: dict[str, list[str]] = {}
        for key in block.keys:
            try:
                addr = normalize(parse_address(key))
                listeners = listener_addresses(addr, http_port, https_port, binds)
            except AddressError as exc:
                raise _fail(block, f"parsing key '{key}': {exc}") from None
            for ln in listeners:
                addr_to_keys.setdefault(ln, []).append(key)
        for ln in sorted(addr_to_keys):
            keys = addr_to_keys[ln]
            addrs = [normalize(parse_address(k)) for k in keys]
            sbmap.setdefault(ln, []).append(SiteBlock(block, keys, addrs, pile, i))
    return sbmap


def _consolidate_pairings(sbmap: dict[str, list[SiteBlock]]) -> list[Pairing]:
    def ident(blocks: list[SiteBlock]) -> list[tuple[int, tuple[str, ...]]]:
        return [(b.origin, tuple(b.keys)) for b in blocks]

    remaining = dict(sbmap)
    out: list[Pairing] = []
    for addr in list(sbmap):
        if addr not in remaining:
            continue
        blocks = remaining.pop(addr)
        pair = Pairing([addr], blocks)
        for other in list(remaining):
            if ident(remaining[other]) == ident(blocks):
                pair.addresses.append(other)
                del remaining[other]
        pair.addresses.sort()
        out.append(pair)
    out.sort(key=lambda p: p.addresses[0])
    return out


def _specificity(s: str) -> int:
    length = len(s) - s.count("*")
    while s:
        start = s.find("{")
        if start < 0:
            return length
        end = s.find("}", start) + 1
        if end <= start:
            return length
        length -= end - start
        s = s[end:]
    return length


def _sort_blocks(blocks: list[SiteBlock]) -> list[SiteBlock]:
    def summary(sb: SiteBlock) -> tuple[str, str, bool]:
        longest_host = longest_path = ""
        wildcard = False
        for a in sb.addrs:
            if "*" in a.host or a.host == "":
                wildcard = True
            if _specificity(a.host) > _specificity(longest_host):
                longest_host = a.host
            if _specificity(a.path) > _specificity(longest_path):
                longest_path = a.path
        return longest_host, longest_path, wildcard

    def less(i: SiteBlock, j: SiteBlock) -> bool:
        ih, ip, iw = summary(i)
        jh, jp, jw = summary(j)
        if _specificity(ih) == 0:
            return False
        if _specificity(jh) == 0:
            return True
        if iw != jw:
            return jw and not iw
        if _specificity(ih) == _specificity(jh):
            return len(ip) > len(jp)
        return _specificity(ih) > _specificity(jh)

    return go_stable_sort(blocks, less)


def _matcher_sets(sb: SiteBlock) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = []
    catch_all = False
    for a in sb.addrs:
        chosen = None
        for mp in pairs:
            if (not mp["path"] and a.path == "") or (mp["path"] == [a.path]):
                chosen = mp
                break
        if chosen is None:
            chosen = {"host": [], "path": [a.path] if a.path else []}
            pairs.append(chosen)
        if a.host == "" and not catch_all:
            chosen["host"] = []
            catch_all = True
        if catch_all:
            continue
        if a.host and a.host not in chosen["host"]:
            chosen["host"].append(a.host)
    out: list[dict[str, Any]] = []
    for mp in pairs:
        ms = {k: v for k, v in mp.items() if v}
        if ms:
            out.append(ms)
    return out


def _append_subroute(
    routes: list[dict[str, Any]],
    sub: Subroute,
    matcher_sets: list[dict[str, Any]],
    block_count: int,
) -> list[dict[str, Any]]:
    if not matcher_sets and not sub.routes and sub.errors is None:
        return routes
    wrap = True
    if not matcher_sets and block_count == 1:
        wrap = any("host" in ms for r in sub.routes for ms in r.get("match", []))
    if wrap:
        route: dict[str, Any] = {"terminal": True}
        if matcher_sets:
            route["match"] = matcher_sets
        if sub.routes or sub.errors is not None:
            route["handle"] = [sub.to_handler()]
        if "match" in route or "handle" in route:
            routes.append(route)
    else:
        routes.extend(sub.routes)
    return routes


def _policy_settings_empty(cp: dict[str, Any]) -> bool:
    return not any(k for k in cp if k not in ("match",))


def _consolidate_conn_policies(cps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cps = go_stable_sort(cps, lambda a, b: "match" not in b and "match" in a)
    out: list[dict[str, Any]] = []
    for cp in cps:
        for existing in out:
            if json.dumps(existing.get("match"), sort_keys=True) == json.dumps(
                cp.get("match"), sort_keys=True
            ):
                for key, val in cp.items():
                    if key == "certificate_selection" and key in existing:
                        tags = existing[key].setdefault("any_tag", [])
                        for t in val.get("any_tag", []):
                            if t not in tags:
                                tags.append(t)
                    elif key not in existing:
                        existing[key] = val
                break
        else:
            out.append(cp)
    return out


def _servers(pairings: list[Pairing], ctx: AdaptContext) -> dict[str, dict[str, Any]]:
    opts = ctx.options
    http_port, https_port = _ports(opts)
    auto_https = opts.get("auto_https", "on")
    default_sni = opts.get("default_sni", "")
    servers: dict[str, dict[str, Any]] = {}
    for idx, pair in enumerate(pairings):
        for j, sb1 in enumerate(pair.blocks):
            for key in sb1.keys:
                for k, sb2 in enumerate(pair.blocks):
                    if k != j and key in sb2.keys:
                        raise _fail(sb1.block, f"ambiguous site definition: {key}")
        srv: dict[str, Any] = {"listen": list(pair.addresses)}
        auto: dict[str, Any] = {}
        if auto_https == "off":
            auto["disable"] = True
        elif auto_https == "disable_redirects":
            auto["disable_redirects"] = True
        elif auto_https == "disable_certs":
            auto["disable_certificates"] = True
        elif auto_https == "ignore_loaded_certs":
            auto["ignore_loaded_certificates"] = True
        pair.blocks = _sort_blocks(pair.blocks)
        catch_all_policy = qualifies_tls = False
        will_add_policy = auto_https != "off"
        if any(sb.pile.get("custom_log") for sb in pair.blocks):
            srv["logs"] = {}
        policies: list[dict[str, Any]] = []
        routes: list[dict[str, Any]] = []
        error_routes: list[dict[str, Any]] | None = None
        for sb in pair.blocks:
            matcher_sets = _matcher_sets(sb)
            hosts = sb.hosts()
            for cv in sb.pile.get("tls.connection_policy", []):
                cp = dict(cv.value)
                cp_hosts = list(hosts)
                if default_sni and default_sni in cp_hosts:
                    cp_hosts.append("")
                    cp["default_sni"] = default_sni
                if cp_hosts:
                    cp["match"] = {"sni": cp_hosts}
                elif default_sni:
                    cp["default_sni"] = default_sni
                if not _policy_settings_empty(cp):
                    policies.append(cp)
                    catch_all_policy = not cp_hosts
            for a in sb.addrs:
                if uses_port_other_than(srv["listen"], http_port) and a.scheme == "http" and a.host:
                    skip = auto.setdefault("skip", [])
                    if a.host not in skip:
                        skip.append(a.host)
                if a.scheme == "https" or (
                    a.scheme != "http" and a.host != "" and a.port != http_port
                ):
                    qualifies_tls = True
                will_add_policy = will_add_policy and (
                    a.port == https_port or (a.port != http_port and a.host != "")
                )
            sub = build_subroute(sb.pile.get("route", []), ctx)
            routes = _append_subroute(routes, sub, matcher_sets, len(pair.blocks))
            for cv in sb.pile.get("error_route", []):
                error_routes = _append_subroute(
                    error_routes or [], cv.value, matcher_sets, len(pair.blocks)
                )
            log_hosts = sb.log_hosts()
            for cv in sb.pile.get("custom_log", []):
                name = cv.value[0]
                if any(a.host == "" for a in sb.addrs):
                    if name:
                        srv["logs"]["default_logger_name"] = name
                    else:
                        srv["logs"].pop("default_logger_name", None)
                else:
                    for h in log_hosts:
                        srv["logs"].setdefault("logger_names", {})[h] = name
            if "logs" in srv and not sb.pile.get("custom_log"):
                if not hosts:
                    srv["logs"]["skip_unmapped_hosts"] = True
                srv["logs"].setdefault("skip_hosts", []).extend(log_hosts)
        _check_schemes(srv, pair.blocks, policies, http_port, https_port)
        if (
            qualifies_tls
            and not catch_all_policy
            and (policies or not will_add_policy or default_sni)
        ):
            policies.append({"default_sni": default_sni} if default_sni else {})
        policies = _consolidate_conn_policies(policies)
        if policies:
            srv["tls_connection_policies"] = policies
        routes = consolidate_routes(routes)
        if routes:
            srv["routes"] = routes
        if error_routes is not None:
            srv["errors"] = {"routes": error_routes}
        if auto:
            srv["automatic_https"] = auto
        if "logs" in srv:
            logs = srv["logs"]
            if "skip_hosts" in logs and not logs["skip_hosts"]:
                del logs["skip_hosts"]
        servers[f"srv{idx}"] = srv
    _apply_server_options(servers, opts)
    return servers


def _check_schemes(
    srv: dict[str, Any],
    blocks: list[SiteBlock],
    policies: list[dict[str, Any]],
    http_port: str,
    https_port: str,
) -> None:
    mode = ""
    for sb in blocks:
        for a in sb.addrs:
            if a.scheme == "http" or a.port == http_port:
                want = "HTTP"
            elif a.scheme == "https" or a.port == https_port or policies:
                want = "HTTPS"
            elif a.host == "":
                want = "HTTP"
            else:
                continue
            if want == "HTTP":
                if mode == "HTTPS":
                    msg = (
                        f"server listening on {srv['listen']} is configured for HTTPS and "
                        f"cannot natively multiplex HTTP and HTTPS: {a.original}"
                    )
                    if a.scheme == "" and a.host == "":
                        msg += " (try specifying https:// in the address)"
                    raise _fail(sb.block, msg)
                if policies:
                    raise _fail(
                        sb.block,
                        f"server listening on {srv['listen']} is HTTP, but attempts to "
                        "configure TLS connection policies",
                    )
            elif mode == "HTTP":
                raise _fail(
                    sb.block,
                    f"server listening on {srv['listen']} is configured for HTTP and cannot "
                    f"natively multiplex HTTP and HTTPS: {a.original}",
                )
            mode = want


def _apply_server_options(servers: dict[str, dict[str, Any]], opts: Mapping[str, Any]) -> None:
    entries = opts.get("servers") or []
    for srv in servers.values():
        chosen = None
        for entry in entries:
            if entry["listener_address"] == "" or entry["listener_address"] in srv["listen"]:
                chosen = entry
                break
        if chosen is None:
            continue
        srv.update(chosen["settings"])
        if chosen.get("log_credentials"):
            srv.setdefault("logs", {})["should_log_credentials"] = True


def _logging(pairings: list[Pairing], options: Mapping[str, Any]) -> dict[str, Any] | None:
    custom: list[tuple[str, dict[str, Any]]] = []
    has_default = False
    debug = "debug" in options

    def add(name: str, log: dict[str, Any]) -> None:
        nonlocal has_default
        if not name:
            return
        if name == "default":
            has_default = True
        if debug and "level" not in log:
            log["level"] = "DEBUG"
        custom.append((name, log))

    for name, log in options.get("log") or []:
        add(name, log)
    if not has_default and debug:
        custom.append(("default", {"level": "DEBUG"}))
    for pair in pairings:
        for sb in pair.blocks:
            for cv in sb.pile.get("custom_log", []):
                add(*cv.value)
    if not custom:
        return None
    logs: dict[str, Any] = {}
    for name, log in custom:
        logs[name] = log
        if name != "default" and log.get("include"):
            default = logs.setdefault("default", {})
            default.setdefault("exclude", []).extend(log["include"])
    return {"logs": logs}


def adapt(
    text: str, filename: str = "Caddyfile", environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Adapt Caddyfile text to a Caddy JSON config; returns (config, warnings).

    Raises :class:`CaddyfileError` (``file:line: message``) on any error.
    """
    blocks = parse(text, filename, environ)
    ctx = AdaptContext()
    for block in blocks:
        if block.keys and block.keys[0].startswith("@"):
            raise _fail(
                block, f"cannot define a matcher outside of a site block: '{block.keys[0]}'"
            )
    blocks = _global_options(blocks, ctx)
    piles: list[dict[str, list[ConfigValue]]] = []
    for block in blocks:
        _expand_block(block)
        if not block.keys:
            raise _fail(
                block,
                "server block without any key is global configuration, and if used, "
                "it must be first",
            )
        piles.append(_run_block(block, ctx))
    pairings = _consolidate_pairings(_map_addresses(blocks, piles, ctx))
    servers = _servers(pairings, ctx)
    opts = ctx.options
    http_port, _ = _ports(opts)
    config: dict[str, Any] = {}
    apps: dict[str, Any] = {}
    http_app: dict[str, Any] = {}
    for key in ("http_port", "https_port", "grace_period", "shutdown_delay"):
        if opts.get(key):
            http_app[key] = opts[key]
    if servers:
        http_app["servers"] = servers
        apps["http"] = http_app
    tls_app = build_tls_app(pairings, opts, http_port)
    if tls_app:
        apps["tls"] = tls_app
    pki_app = build_pki_app((sb.pile for pair in pairings for sb in pair.blocks), opts)
    if pki_app:
        apps["pki"] = pki_app
    if "storage" in opts:
        config["storage"] = opts["storage"]
    if "admin" in opts:
        config["admin"] = opts["admin"]
    logging = _logging(pairings, opts)
    if logging:
        config["logging"] = logging
    if apps:
        config["apps"] = apps
    warnings = list(ctx.warnings)
    diff = formatting_difference(filename, text)
    if diff is not None:
        warnings.append(diff)
    return config, warnings
