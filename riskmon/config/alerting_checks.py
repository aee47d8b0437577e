"""Checks of the alerting sections that types alone cannot make: routes name real receivers,
matchers and regular expressions compile, receiver URLs are usable, retry settings are sane.

Each problem is (key path, message) so the loader can point at the file line. Receiver URLs are
secrets (a Slack hook is its own credential): a message says what is wrong, never the URL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from riskmon.config.alerting import AlertmanagerReceiver, SlackReceiver, WebhookReceiver
from riskmon.config.schema import MonitorConfig, RuleConfig

if TYPE_CHECKING:
    from riskmon.alerts.routing import Route

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]

_ROUTE_ERROR = re.compile(r"^route((?:\.[A-Za-z_]+|\[\d+\])*): (.*)$", re.DOTALL)
_PATH_PART = re.compile(r"\.([A-Za-z_]+)|\[(\d+)\]")


def check_alerting(config: MonitorConfig) -> list[Problem]:
    # Imported here: the alerts and rules layers build on config (their modules import its types),
    # so importing them at the top would make the config package import itself in a circle.
    from riskmon.alerts.inhibition import InhibitRule
    from riskmon.export_rules import check_firm
    from riskmon.rules.ruleset import check_rules

    problems: list[Problem] = list(check_rules(config))
    problems.extend(_check_reserved_annotations(config))
    problems.extend(check_firm(config))
    problems.extend(_check_receivers(config))
    problems.extend(_check_routes(config))
    for index, rule in enumerate(config.inhibit_rules or []):
        try:
            InhibitRule.parse(rule.source_matchers, rule.target_matchers, rule.equal)
        except ValueError as exc:
            problems.append((("inhibit_rules", index), str(exc)))
    delivery = config.delivery
    if not 0 < delivery.retry_initial <= delivery.retry_max:
        problems.append((("delivery", "retry_initial"), "expected 0 < retry_initial <= retry_max"))
    if delivery.dead_letter_after <= 0:
        problems.append((("delivery", "dead_letter_after"), "expected a positive duration"))
    if delivery.external_url and not is_http_url(delivery.external_url):
        problems.append((("delivery", "external_url"), "expected an http:// or https:// URL with a host"))
    for desk_name, desk in config.desks.items():
        for key in ("max_pending_rfq_usd", "max_worst_case_loss_usd"):
            amount = getattr(desk.limits, key)
            if amount is not None and amount <= 0:
                problems.append((("desks", desk_name, "limits", key), "expected a positive amount"))
    return problems


def _check_reserved_annotations(config: MonitorConfig) -> list[Problem]:
    """`resolution` says why an alert resolved; the tracker drops it from firing alerts, so a rule's
    own would silently vanish."""
    from riskmon.alerts.lifecycle import RESOLUTION

    message = (
        f"`{RESOLUTION}` is reserved: riskmon sets it on a resolved alert to say why it resolved, and drops it "
        "from firing ones; name the annotation otherwise"
    )
    scopes: list[tuple[KeyPath, list[RuleConfig]]] = [(("rules",), config.rules)]
    scopes.extend((("desks", name, "rules"), desk.rules) for name, desk in config.desks.items())
    return [
        ((*path, index, "annotations", RESOLUTION), message)
        for path, rules in scopes
        for index, rule in enumerate(rules)
        if RESOLUTION in rule.annotations
    ]


def _check_receivers(config: MonitorConfig) -> list[Problem]:
    problems: list[Problem] = []
    for name, receiver in config.receivers.items():
        path: KeyPath = ("receivers", name)
        if isinstance(receiver, WebhookReceiver) and not is_http_url(receiver.url.reveal()):
            problems.append(((*path, "url"), "expected an http:// or https:// URL with a host"))
        if isinstance(receiver, SlackReceiver) and not is_http_url(receiver.webhook_url.reveal()):
            problems.append(((*path, "webhook_url"), "expected an https:// incoming-webhook URL"))
        if isinstance(receiver, AlertmanagerReceiver):
            if not receiver.urls:
                problems.append(((*path, "urls"), "expected at least one Alertmanager URL"))
            for index, url in enumerate(receiver.urls):
                if not is_http_url(url):
                    problems.append(((*path, "urls", index), "expected an http:// or https:// URL with a host"))
            if receiver.resend_interval <= 0:
                problems.append(((*path, "resend_interval"), "expected a positive duration"))
        if isinstance(receiver, WebhookReceiver | SlackReceiver | AlertmanagerReceiver):
            if receiver.max_concurrency < 1:
                problems.append(((*path, "max_concurrency"), "expected at least 1"))
            if receiver.timeout <= 0:
                problems.append(((*path, "timeout"), "expected a positive duration"))
        if isinstance(receiver, WebhookReceiver) and receiver.max_alerts < 0:
            problems.append(((*path, "max_alerts"), "expected 0 (no limit) or more"))
    return problems


def _check_routes(config: MonitorConfig) -> list[Problem]:
    from riskmon.alerts.routing import Route

    if config.routes is None:
        return []
    try:
        root = Route.from_dict(config.routes)
    except ValueError as exc:
        return [_route_problem(str(exc))]
    problems: list[Problem] = []

    def walk(route: Route, path: KeyPath) -> None:
        if route.receiver not in config.receivers:
            known = ", ".join(sorted(config.receivers))
            problems.append(((*path, "receiver"), f"no receiver named `{route.receiver}`; configured: {known}"))
        for index, child in enumerate(route.routes):
            walk(child, (*path, "routes", index))

    walk(root, ("routes",))
    return problems


def _route_problem(message: str) -> Problem:
    found = _ROUTE_ERROR.match(message)
    if found is None:
        return (("routes",), message)
    path: list[str | int] = ["routes"]
    for name, index in _PATH_PART.findall(found.group(1)):
        path.append(name if name else int(index))
    return tuple(path), found.group(2)


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
