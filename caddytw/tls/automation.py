"""Automatic HTTPS: Caddy's rules for which servers speak TLS and which names get certs.

:func:`plan_automatic_https` is pure: it reads a parsed :class:`Config` and returns
the config as Caddy would run it (TLS enabled on servers that qualify, HTTP -> HTTPS
redirect routes added to a server on ``http_port`` or to a new
``remaining_auto_https_redirects`` server) plus the names to manage and the policy for
each. Applying it to its own output changes nothing, so the app can plan once when it
builds servers and again when it creates the TLS runtime.

The rules (Caddy's ``automaticHTTPSPhase1``): a server with ``automatic_https.disable``
or listening only on ``http_port`` is left alone; one listening only on ``https_port``
gets TLS; names come from the host matchers of its top-level routes (minus ``skip``);
a server with names or with connection policies serves TLS; names that already have a
loaded certificate are not managed; redirects go to the HTTPS port the name is served
on, answered by the server on ``http_port`` after its host-matched routes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.listen import ListenAddress
from caddytw.config.model import Config, ServerConfig
from caddytw.http.matchers import normalize_short_form
from caddytw.tls.certs import Certificate, CertificateError
from caddytw.tls.config import (
    AutomationPolicy,
    ConnectionPolicy,
    IssuerConfig,
    TLSAppConfig,
    parse_connection_policies,
    parse_tls_app,
)

REDIRECT_SERVER = "remaining_auto_https_redirects"
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")


@dataclass(frozen=True)
class ManagedName:
    """A name whose certificate automation obtains and renews."""

    name: str
    policy: AutomationPolicy
    issuers: tuple[IssuerConfig, ...]


@dataclass
class HTTPSPlan:
    """What automatic HTTPS decided for a config."""

    config: Config
    tls_app: TLSAppConfig
    loaded: list[Certificate] = field(default_factory=list)
    tls_servers: dict[str, tuple[ConnectionPolicy, ...]] = field(default_factory=dict)
    managed: dict[str, ManagedName] = field(default_factory=dict)
    # Names whose policy gets certificates at handshake (on_demand, get_certificate):
    # not ordered at start; for on_demand they are the policy's allowlist.
    on_demand: dict[str, ManagedName] = field(default_factory=dict)

    def manage(self, name: str) -> None:
        """Automate ``name`` under its policy (now, or at handshake)."""
        policy = policy_for(name, self.tls_app.policies)
        managed = ManagedName(name, policy, policy.issuers or default_issuers(name))
        if policy.on_demand or policy.get_certificate:
            self.on_demand.setdefault(name, managed)
        else:
            self.managed.setdefault(name, managed)

    def is_tls(self, server_name: str) -> bool:
        return server_name in self.tls_servers


def subject_is_internal(name: str) -> bool:
    """Names a public CA will not certify: ``localhost``, local suffixes, IP addresses."""
    if name == "localhost" or name.endswith(INTERNAL_SUFFIXES):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def subject_qualifies(name: str) -> bool:
    """certmagic's ``SubjectQualifiesForCert``: a concrete name or a one-label wildcard."""
    if not name or name.startswith(".") or name.endswith(".") or "{" in name:
        return False
    if any(ch.isspace() for ch in name) or name == "*" or "*" in name.lstrip("*"):
        return False
    return not (name.startswith("*") and not name.startswith("*."))


def default_issuers(name: str) -> tuple[IssuerConfig, ...]:
    if subject_is_internal(name):
        return (IssuerConfig("internal", ca="local"),)
    return (IssuerConfig("acme"),)


def policy_for(name: str, policies: tuple[AutomationPolicy, ...]) -> AutomationPolicy:
    """The first policy naming ``name`` (wildcard subjects count), else the first
    catch-all, else defaults (Caddy's ``getAutomationPolicyForName``)."""
    for policy in policies:
        if name in policy.subjects:
            return policy
    for policy in policies:
        if policy.covers(name):
            return policy
    for policy in policies:
        if not policy.subjects:
            return policy
    return AutomationPolicy()


def host_names(routes: list[Any]) -> list[str]:
    """Host matcher values in a server's top-level routes, in order, deduplicated."""
    names: dict[str, None] = {}
    for route in routes:
        if not isinstance(route, dict):
            continue
        match = route.get("match") or []
        for matcher_set in match if isinstance(match, list) else []:
            if not isinstance(matcher_set, dict):
                continue
            try:
                matcher_set = normalize_short_form(matcher_set, "")
            except ConfigError:
                continue
            hosts = matcher_set.get("host")
            if isinstance(hosts, list):
                names.update((str(h).lower(), None) for h in hosts if isinstance(h, str))
    return list(names)


def _has_host_matcher(route: Any) -> bool:
    return bool(host_names([route]))


def _listens_only_on(server: ServerConfig, port: int) -> bool:
    tcp = [a for a in server.listen if not a.network.startswith("udp")]
    return bool(tcp) and all(a.port == port for a in tcp)


def plan_automatic_https(config: Config, collector: ErrorCollector | None = None) -> HTTPSPlan:
    """Decide TLS for every server; errors go to ``collector`` (or are raised)."""
    own = collector or ErrorCollector()
    try:
        tls_app = parse_tls_app(config.tls, config.storage)
    except ConfigError as error:
        own.add(error)
        tls_app = TLSAppConfig()
    plan = HTTPSPlan(config, tls_app)
    _load_files(plan, own)
    for name in tls_app.automate:  # the ``automate`` certificate loader
        plan.manage(name)
    http_port, https_port = config.http.http_port, config.http.https_port
    servers = list(config.http.servers)
    redirects: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for index, server in enumerate(servers):
        options = _automatic_options(server, own)
        try:
            policies = parse_connection_policies(
                server.tls_connection_policies, f"{server.path}.tls_connection_policies"
            )
        except ConfigError as error:
            own.add(error)
            policies = ()
        if server.tls_connection_policies is not None and not policies:
            policies = (ConnectionPolicy(),)
        if options.get("disable") or _listens_only_on(server, http_port):
            if server.tls_connection_policies:
                plan.tls_servers[server.name] = policies
            continue
        if not policies and _listens_only_on(server, https_port):
            policies = (ConnectionPolicy(),)
        skip = set(options.get("skip", []))
        domains = [d for d in host_names(server.routes) if d not in skip]
        if not domains and not policies:
            continue
        if not options.get("disable_certificates"):
            skip_certs = set(options.get("skip_certificates", []))
            for name in domains:
                if not subject_qualifies(name) or name in skip_certs:
                    continue
                if not options.get("ignore_loaded_certificates") and any(
                    name in c.names for c in plan.loaded
                ):
                    continue
                plan.manage(name)
        if not policies:
            policies = (ConnectionPolicy(),)
        plan.tls_servers[server.name] = policies
        if server.tls_connection_policies is None:
            servers[index] = replace(server, tls_connection_policies=[{}])
        if options.get("disable_redirects"):
            continue
        for address in server.listen:
            if address.network.startswith("udp"):
                continue
            key = (address.network, address.host, http_port)
            for name in domains or [""]:
                redirects.setdefault(key, []).append(_redirect_route(name, address.port))
    plan.config = replace(
        config, http=replace(config.http, servers=tuple(_add_redirects(servers, redirects, plan)))
    )
    if collector is None:
        own.raise_if_any()
    return plan


def _automatic_options(server: ServerConfig, collector: ErrorCollector) -> dict[str, Any]:
    from caddytw.config.reader import ObjectReader

    path = f"{server.path}.automatic_https"
    try:
        reader = ObjectReader(server.automatic_https, path)
        options = {
            "disable": reader.flag("disable"),
            "disable_redirects": reader.flag("disable_redirects"),
            "disable_certificates": reader.flag("disable_certificates"),
            "skip": [s.lower() for s in reader.strings("skip")],
            "skip_certificates": [s.lower() for s in reader.strings("skip_certificates")],
            "ignore_loaded_certificates": reader.flag("ignore_loaded_certificates"),
        }
        reader.done()
        return options
    except ConfigError as error:
        collector.add(error)
        return {"disable": True}


def _load_files(plan: HTTPSPlan, collector: ErrorCollector) -> None:
    for index, item in enumerate(plan.tls_app.load_files):
        try:
            plan.loaded.append(Certificate.from_files(item.certificate, item.key, tags=item.tags))
        except CertificateError as error:
            collector.add(ConfigError(f"apps.tls.certificates.load_files[{index}]", str(error)))


def _redirect_route(name: str, https_port: int, catch_all: bool = False) -> dict[str, Any]:
    """Caddy's ``makeRedirRoute``: 308 to the same host on the HTTPS port."""
    target = "https://{http.request.host}"
    if https_port != 443:
        target += f":{https_port}"
    target += "{http.request.uri}"
    route: dict[str, Any] = {
        "handle": [
            {
                "handler": "static_response",
                "headers": {"Location": [target]},
                "status_code": 308,
                "close": True,
            }
        ]
    }
    if name:
        route["match"] = [{"host": [name]}]
    elif catch_all:
        route["match"] = [{"protocol": "http"}]
    return route


def _add_redirects(
    servers: list[ServerConfig],
    redirects: dict[tuple[str, str, int], list[dict[str, Any]]],
    plan: HTTPSPlan,
) -> list[ServerConfig]:
    https_port = plan.config.http.https_port
    catch_all = _redirect_route("", https_port, catch_all=True)
    remaining: list[ListenAddress] = []
    remaining_routes: list[dict[str, Any]] = []
    for (network, host, port), routes in redirects.items():
        owner = next(
            (
                i
                for i, s in enumerate(servers)
                if any((a.network, a.host, a.port) == (network, host, port) for a in s.listen)
            ),
            None,
        )
        if owner is None:
            remaining.append(ListenAddress(network, host, port))
            remaining_routes += [r for r in routes if r not in remaining_routes]
            continue
        server = servers[owner]
        if server.name == REDIRECT_SERVER:
            continue  # planned already (this config is a plan's output)
        existing = list(server.routes)
        if plan.managed or plan.on_demand:
            insert = max((i + 1 for i, r in enumerate(existing) if _has_host_matcher(r)), default=0)
            new = [r for r in routes if r not in existing]
            existing[insert:insert] = new
        if (not existing or existing[-1].get("match")) and catch_all not in existing:
            existing.append(catch_all)
        servers[owner] = replace(server, routes=existing)
    if remaining:
        if catch_all not in remaining_routes:
            remaining_routes.append(catch_all)
        servers.append(
            ServerConfig(
                name=REDIRECT_SERVER,
                path=f"apps.http.servers.{REDIRECT_SERVER}",
                listen=tuple(remaining),
                routes=remaining_routes,
                error_routes=None,
                protocols=("h1", "h2"),
                automatic_https={"disable": True},
            )
        )
    return servers
