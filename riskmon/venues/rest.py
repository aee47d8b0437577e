"""The REST half of a venue session: one pooled httpx client, errors made safe to log.

A failure becomes VenueUnavailable whose message names the call and the HTTP status or the
error class, never a header, a body or a query string (they can carry credentials).

Every client shares the process's one TLS context (riskmon.tls).
"""

from __future__ import annotations

from typing import Any

import httpx

from riskmon.tls import default_ssl_context
from riskmon.venues.session_failures import VenueUnavailable

_MAX_BODY = 16 * 1024 * 1024


class VenueRest:
    def __init__(self, base_url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._headers = headers or {}
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, headers=self._headers, follow_redirects=False, verify=default_ssl_context()
            )
        return self._client

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> str:
        """The response body of a 2xx answer; VenueUnavailable for anything else."""
        what = f"{method} {path}"
        try:
            response = await self._http().request(
                method, self._base_url + path, json=json, headers=headers, params=params
            )
        except httpx.TimeoutException:
            raise VenueUnavailable(f"{what}: timed out") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            raise VenueUnavailable(f"{what}: {type(exc).__name__}") from None
        except Exception as exc:  # anyio can raise an ExceptionGroup for a bad port
            raise VenueUnavailable(f"{what}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise VenueUnavailable(f"{what}: HTTP {response.status_code}", response.status_code)
        if len(response.content) > _MAX_BODY:
            raise VenueUnavailable(f"{what}: response larger than {_MAX_BODY} bytes")
        return response.text

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
