"""Hot reload: which parts of a new config apply to a running monitor, and the HTTP trigger.

Rules, limits, routes, receivers, inhibition, delivery and alert settings apply at once. What the
venue sessions and the HTTP server were built from (venues, underlyings, desk accounts, server,
state) keeps its running value until a restart, and the answer says so: a reload never tears
down a live feed. A config that does not load is rejected whole with its errors, and the running
one stays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from riskmon.asgi_server import Receive, Scope, Send, respond
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import Secret
from riskmon.runtime.api_common import refuse_unauthorized

log = logging.getLogger(__name__)

RELOAD_PATH = "/-/reload"
_RESTART_SECTIONS = ("venues", "underlyings", "server", "state")


class ReloadOutcome(msgspec.Struct, frozen=True):
    status: str  # "reloaded" | "rejected"
    errors: list[str] = []
    restart_required: list[str] = []


def plan_reload(running: MonitorConfig, new: MonitorConfig) -> tuple[MonitorConfig, list[str]]:
    """The config to apply now, and the changes that wait for a restart (as key paths)."""
    restart = [name for name in _RESTART_SECTIONS if getattr(running, name) != getattr(new, name)]
    desks = {}
    for name, desk in running.desks.items():
        updated = new.desks.get(name)
        if updated is None:
            restart.append(f"desks.{name} (removed)")
            desks[name] = desk
            continue
        if updated.accounts != desk.accounts:
            restart.append(f"desks.{name}.accounts")
        desks[name] = msgspec.structs.replace(updated, accounts=desk.accounts)
    restart.extend(f"desks.{name} (added)" for name in new.desks if name not in running.desks)
    kept = {name: getattr(running, name) for name in _RESTART_SECTIONS}
    return msgspec.structs.replace(new, desks=desks, **kept), restart


class ReloadEndpoint:
    """POST /-/reload (bearer token when configured): 200 with what waits for a restart, or 400 with errors."""

    def __init__(self, reload: Callable[[], Awaitable[ReloadOutcome]], token: Secret | None) -> None:
        self._reload = reload
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await respond(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"POST")])
            return
        refused = refuse_unauthorized(scope, self._token, log, "reload")
        if refused is not None:
            status, payload, headers = refused
            await respond(send, status, msgspec.json.encode(payload), "application/json", headers)
            return
        try:
            outcome = await self._reload()
        except Exception:
            log.exception("reload failed")
            outcome = ReloadOutcome("rejected", ["internal error; the running config is unchanged"])
        status = 200 if outcome.status == "reloaded" else 400
        await respond(send, status, msgspec.json.encode(outcome), "application/json")
