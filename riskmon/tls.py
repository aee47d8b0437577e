"""The one TLS context of the process, for every outgoing connection: venue REST clients, venue
websockets and alert receivers reached over https.

httpx builds a context per client, loading the CA bundle each time (~50-130 ms, on a restart's path
for every REST venue); this one is built on first use and shared. It trusts what httpx trusts for
`verify=True`: certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set. A firm whose internal
CA is only in the system store points SSL_CERT_FILE at it.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
