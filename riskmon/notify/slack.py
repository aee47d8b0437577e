"""A notification as a Slack incoming-webhook message, in Block Kit inside one coloured attachment.

Block Kit has no colour of its own: the legacy attachment colour bar is the only way to colour a
message, so the blocks go inside a single attachment whose colour is the highest firing severity
(green when everything resolved). The top-level `text` is the plain fallback Slack shows in
notifications and reads to screen readers.

Slack rejects a whole message that breaks one of its limits (`invalid_blocks`), and an alert storm
is exactly when the message must still go out, so every text is cut to its limit and a group with
more alerts than fit in 50 blocks ends with an exact "…and N more alerts".
A resolved alert keeps the summary it fired with; its `resolution` annotation (why it resolved: a
quote confirmed late or released, a limit back under) follows on a line of its own, in the same
block, so it costs no block of the budget.
Label and annotation values come from venues and config (a market name is venue data), so they
are escaped: a value cannot become a link, a mention or an @channel.
Pure and deterministic: the same Notification renders to the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from riskmon.alerts.grouping import Notification
from riskmon.alerts.lifecycle import RESOLUTION, AlertTransition
from riskmon.notify.webhook import rfc3339

# Slack's published Block Kit limits.
MAX_BLOCKS: Final = 50
MAX_HEADER_CHARS: Final = 150
MAX_SECTION_TEXT_CHARS: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD_CHARS: Final = 2000
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_CONTEXT_TEXT_CHARS: Final = 3000
MAX_FALLBACK_CHARS: Final = 3000
MAX_FALLBACK_LINE_CHARS: Final = 300
"""One long summary must not crowd the other alerts out of the notification preview."""
MAX_RESOLUTION_CHARS: Final = 1000
"""A resolution's share of its section text: a long summary must not cut it away."""

SEVERITY_COLOURS: Final = {"critical": "#E01E5A", "warning": "#ECB22E", "info": "#36C5F0"}
RESOLVED_COLOUR: Final = "#2EB67D"
_SEVERITY_RANK: Final = {"critical": 3, "warning": 2, "info": 1}
ELLIPSIS: Final = "…"

# (field title, where to read it) in display order; the order is fixed so output is deterministic.
_FIELDS: Final = (("Desk", "desk"), ("Venue", "venue"), ("Market", "market"), ("Value", "value"), ("Limit", "limit"))


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters; with them escaped, `<!channel>` or `<http://x|y>` is just text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut; never splits an escape like `&amp;`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def _rank(severity: str) -> int:
    return _SEVERITY_RANK.get(severity, 0)


def highest_severity(alerts: Sequence[AlertTransition]) -> str:
    return max((a.severity for a in alerts), key=lambda s: (_rank(s), s), default="")


def _alertname(notification: Notification, alerts: Sequence[AlertTransition]) -> str:
    grouped = notification.group_labels.get("alertname")
    if grouped:
        return grouped
    return ", ".join(sorted({a.alertname for a in alerts}))


def headline(notification: Notification) -> str:
    """`[FIRING:2] ExposureLimitBreach critical — sol-desk`, Alertmanager's title with the group's values."""
    alerts = notification.firing or notification.resolved
    status = f"FIRING:{len(notification.firing)}" if notification.firing else "RESOLVED"
    parts = [f"[{status}]", _alertname(notification, (*notification.firing, *notification.resolved))]
    severity = highest_severity(alerts)
    if severity:
        parts.append(severity)
    line = " ".join(p for p in parts if p)
    grouped = [v for k, v in sorted(notification.group_labels.items()) if k not in ("alertname", "severity") and v]
    if grouped:
        line += " — " + ", ".join(grouped)
    return line


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _field_values(alert: AlertTransition) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for title, key in _FIELDS:
        label = alert.labels.get(key, "")
        note = alert.annotations.get(key, "")
        # Limit alerts carry the limit's kind as a label and its amount as an annotation: show both.
        if label and note and label != note:
            out.append((title, f"{note} ({label})"))
        elif note or label:
            out.append((title, note or label))
    if alert.severity:
        out.append(("Severity", alert.severity))
    out.append(("Started", rfc3339(alert.starts_at)))
    if alert.status == "resolved":
        out.append(("Ended", rfc3339(alert.ts)))
    return out[:MAX_FIELDS]


def _resolution(alert: AlertTransition) -> str:
    return alert.annotations.get(RESOLUTION, "") if alert.status == "resolved" else ""


def _alert_blocks(alert: AlertTransition) -> list[dict[str, Any]]:
    summary = alert.annotations.get("summary") or alert.alertname
    status = "Firing" if alert.status == "firing" else "Resolved"
    resolution = _resolution(alert)
    tail = truncate(f"\n*Resolution:* {escape_mrkdwn(resolution)}", MAX_RESOLUTION_CHARS) if resolution else ""
    text = truncate(f"*{status}:* {escape_mrkdwn(summary)}", MAX_SECTION_TEXT_CHARS - len(tail)) + tail
    section: dict[str, Any] = {
        "type": "section",
        "text": _mrkdwn(text),
        "fields": [
            _mrkdwn(truncate(f"*{title}*\n{escape_mrkdwn(value)}", MAX_FIELD_CHARS))
            for title, value in _field_values(alert)
        ],
    }
    blocks = [section]
    description = alert.annotations.get("description")
    if description:
        text = truncate(escape_mrkdwn(description), MAX_CONTEXT_TEXT_CHARS)
        blocks.append({"type": "context", "elements": [_mrkdwn(text)]})
    return blocks


def _more_block(rest: Sequence[AlertTransition]) -> dict[str, Any]:
    firing = sum(1 for a in rest if a.status == "firing")
    noun = "alert" if len(rest) == 1 else "alerts"
    text = f"{ELLIPSIS}and {len(rest)} more {noun} ({firing} firing, {len(rest) - firing} resolved)"
    return {"type": "section", "text": _mrkdwn(text)}


def _link_block(external_url: str) -> dict[str, Any]:
    # `|` would end the URL part of a Slack link, so it is percent-encoded; &, <, > are escaped.
    url = escape_mrkdwn(external_url.replace("|", "%7C"))
    return {"type": "context", "elements": [_mrkdwn(truncate(f"<{url}|Open in riskmon>", MAX_CONTEXT_TEXT_CHARS))]}


def _blocks(notification: Notification, external_url: str) -> list[dict[str, Any]]:
    title = truncate(headline(notification), MAX_HEADER_CHARS)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    footer = [_link_block(external_url)] if external_url else []
    alerts = (*notification.firing, *notification.resolved)
    budget = MAX_BLOCKS - len(blocks) - len(footer)
    shown = 0
    for index, alert in enumerate(alerts):
        own = ([{"type": "divider"}] if index else []) + _alert_blocks(alert)
        reserve = 1 if index + 1 < len(alerts) else 0  # room for "…and N more" if this is not the last
        if len(own) + reserve > budget:
            break
        blocks.extend(own)
        budget -= len(own)
        shown += 1
    if shown < len(alerts):
        blocks.append(_more_block(alerts[shown:]))
    return blocks + footer


def _fallback_text(notification: Notification) -> str:
    """The headline, then one line per alert while they fit, then how many did not."""
    alerts = (*notification.firing, *notification.resolved)
    text = truncate(escape_mrkdwn(headline(notification)), MAX_FALLBACK_LINE_CHARS)
    for index, alert in enumerate(alerts):
        summary = alert.annotations.get("summary") or alert.alertname
        resolution = _resolution(alert)
        if resolution:
            summary = f"{summary} — {resolution}"
        line = "\n• " + truncate(escape_mrkdwn(summary), MAX_FALLBACK_LINE_CHARS)
        rest = len(alerts) - index - 1
        reserve = len(f"\n{ELLIPSIS}and {rest} more") if rest else 0
        if len(text) + len(line) + reserve > MAX_FALLBACK_CHARS:
            return f"{text}\n{ELLIPSIS}and {len(alerts) - index} more"
        text += line
    return text


def slack_message(notification: Notification, *, channel: str | None = None, external_url: str = "") -> dict[str, Any]:
    """The incoming-webhook JSON object for one notification group."""
    if notification.firing:
        colour = SEVERITY_COLOURS.get(highest_severity(notification.firing), SEVERITY_COLOURS["info"])
    else:
        colour = RESOLVED_COLOUR
    message: dict[str, Any] = {"text": _fallback_text(notification)}
    if channel is not None:
        message["channel"] = channel
    message["attachments"] = [{"color": colour, "blocks": _blocks(notification, external_url)}]
    return message


def slack_body(notification: Notification, *, channel: str | None = None, external_url: str = "") -> bytes:
    """`slack_message` as the compact UTF-8 JSON bytes that go into the outbox."""
    message = slack_message(notification, channel=channel, external_url=external_url)
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
