"""TLS for caddytw: certificates, ACME and internal issuers, automatic HTTPS, HTTP/2.

The modules each have one job: :mod:`config` parses ``apps.tls`` and connection
policies, :mod:`store` keeps certificates on disk in Caddy's layout, :mod:`certs`
chooses a certificate per SNI name, :mod:`context` builds pyOpenSSL contexts,
:mod:`acme` and :mod:`internal` issue certificates, :mod:`automation` decides which
names get certificates (Caddy's automatic HTTPS) and keeps them renewed,
:mod:`listeners` opens plain and TLS sockets.
"""
