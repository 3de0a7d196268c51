"""Caddyfile placeholder shorthands, expanded exactly as Caddy's table does.

``{host}`` is the Caddyfile spelling of ``{http.request.host}`` and so on;
the adapter expands every token of every site block before directives see
it, so handlers only ever receive the long JSON forms.
"""

from __future__ import annotations

import re

__all__ = ["SHORTHANDS", "expand"]

SHORTHANDS: dict[str, str] = {
    "{dir}": "{http.request.uri.path.dir}",
    "{file}": "{http.request.uri.path.file}",
    "{host}": "{http.request.host}",
    "{hostport}": "{http.request.hostport}",
    "{port}": "{http.request.port}",
    "{method}": "{http.request.method}",
    "{path}": "{http.request.uri.path}",
    "{query}": "{http.request.uri.query}",
    "{remote}": "{http.request.remote}",
    "{remote_host}": "{http.request.remote.host}",
    "{remote_port}": "{http.request.remote.port}",
    "{scheme}": "{http.request.scheme}",
    "{uri}": "{http.request.uri}",
    "{tls_cipher}": "{http.request.tls.cipher_suite}",
    "{tls_version}": "{http.request.tls.version}",
    "{tls_client_fingerprint}": "{http.request.tls.client.fingerprint}",
    "{tls_client_issuer}": "{http.request.tls.client.issuer}",
    "{tls_client_serial}": "{http.request.tls.client.serial}",
    "{tls_client_subject}": "{http.request.tls.client.subject}",
    "{tls_client_certificate_pem}": "{http.request.tls.client.certificate_pem}",
    "{tls_client_certificate_der_base64}": "{http.request.tls.client.certificate_der_base64}",
    "{upstream_hostport}": "{http.reverse_proxy.upstream.hostport}",
}

_SIMPLE_RE = re.compile("|".join(re.escape(k) for k in SHORTHANDS))

# Applied one after another, in this order, after the simple table.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\{header\.([\w-]*)\}", re.ASCII), r"{http.request.header.\1}"),
    (re.compile(r"\{cookie\.([\w-]*)\}", re.ASCII), r"{http.request.cookie.\1}"),
    (re.compile(r"\{labels\.([\w-]*)\}", re.ASCII), r"{http.request.host.labels.\1}"),
    (re.compile(r"\{path\.([\w-]*)\}", re.ASCII), r"{http.request.uri.path.\1}"),
    (re.compile(r"\{file\.([\w-]*)\}", re.ASCII), r"{http.request.uri.path.file.\1}"),
    (re.compile(r"\{query\.([\w-]*)\}", re.ASCII), r"{http.request.uri.query.\1}"),
    (re.compile(r"\{re\.([\w-]*)\.([\w-]*)\}", re.ASCII), r"{http.regexp.\1.\2}"),
    (re.compile(r"\{vars\.([\w-]*)\}", re.ASCII), r"{http.vars.\1}"),
    (re.compile(r"\{rp\.([\w.-]*)\}", re.ASCII), r"{http.reverse_proxy.\1}"),
    (re.compile(r"\{err\.([\w.-]*)\}", re.ASCII), r"{http.error.\1}"),
    (re.compile(r"\{file_match\.([\w-]*)\}", re.ASCII), r"{http.matchers.file.\1}"),
]


def expand(text: str) -> str:
    """Expand every shorthand placeholder in one token's text."""
    if "{" not in text:
        return text
    text = _SIMPLE_RE.sub(lambda m: SHORTHANDS[m.group(0)], text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
