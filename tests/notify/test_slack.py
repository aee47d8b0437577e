"""Slack Block Kit rendering against Slack's published limits, and delivery to a loopback Slack-like webhook."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.grouping import Notification
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.notify.slack import slack_body, slack_message
from riskmon.notify.webhook import WebhookSender

T0 = 1_700_000_000.0
CRITICAL, WARNING, INFO, GREEN = "#E01E5A", "#ECB22E", "#36C5F0", "#2EB67D"

# --- a Block Kit validator, from Slack's published limits ------------------------------------------
# https://api.slack.com/reference/block-kit/blocks and .../composition-objects

BLOCK_TYPES = {
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
}
HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def check_text(obj: Any, limit: int, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> None:
    assert isinstance(obj, dict)
    assert obj["type"] in kinds
    assert isinstance(obj["text"], str)
    assert 1 <= len(obj["text"]) <= limit, (len(obj["text"]), limit)


def check_block(block: dict[str, Any]) -> None:
    kind = block["type"]
    assert kind in BLOCK_TYPES
    if "block_id" in block:
        assert len(block["block_id"]) <= 255
    if kind == "header":
        check_text(block["text"], 150, ("plain_text",))
    elif kind == "section":
        assert "text" in block or "fields" in block
        if "text" in block:
            check_text(block["text"], 3000)
        if "fields" in block:
            assert 1 <= len(block["fields"]) <= 10
            for item in block["fields"]:
                check_text(item, 2000)
    elif kind == "context":
        assert 1 <= len(block["elements"]) <= 10
        for element in block["elements"]:
            check_text(element, 3000)
    elif kind == "divider":
        assert set(block) <= {"type", "block_id"}
    else:
        raise AssertionError(f"riskmon does not send {kind} blocks")


def validate_message(message: Any) -> list[dict[str, Any]]:
    """Raise AssertionError when Slack would refuse the message; returns its blocks."""
    assert isinstance(message, dict)
    assert set(message) <= {"text", "channel", "attachments", "blocks"}
    assert isinstance(message["text"], str)
    assert 1 <= len(message["text"]) <= 3000
    blocks: list[dict[str, Any]] = list(message.get("blocks", []))
    for attachment in message.get("attachments", []):
        assert HEX_COLOUR.match(attachment["color"])
        blocks.extend(attachment["blocks"])
    assert 1 <= len(blocks) <= 50
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids))
    for block in blocks:
        check_block(block)
    return blocks


# --- alerts ---------------------------------------------------------------------------------------


def alert(
    status: str = "firing",
    *,
    severity: str = "critical",
    alertname: str = "ExposureLimitBreach",
    market: str = "SOL-PERP",
    summary: str = "Desk sol-desk net notional on SOL-PERP is $1,250,000, 125% of its $1,000,000 limit",
    description: str | None = "Desk sol-desk net notional reached $1,250,000 against a limit of $1,000,000.",
    extra: dict[str, str] | None = None,
    ts: float = T0,
) -> AlertTransition:
    labels = {"desk": "sol-desk", "market": market, "limit": "net_notional", "alertname": alertname}
    labels = {**labels, "severity": severity, **(extra or {})}
    annotations = {"summary": summary, "value": "1250000.00", "limit": "1000000.00"}
    if description is not None:
        annotations["description"] = description
    return AlertTransition(
        ts=ts,
        status=status,  # type: ignore[arg-type]
        alertname=alertname,
        severity=severity,
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint(labels),
        starts_at=T0 - 60,
        value=1_250_000.0,
    )


def notification(*alerts: AlertTransition, group_labels: dict[str, str] | None = None) -> Notification:
    return Notification(
        ts=T0,
        receiver="slack-risk",
        route_id="r0",
        group_key='{}:{desk="sol-desk"}',
        group_labels={"desk": "sol-desk"} if group_labels is None else group_labels,
        firing=tuple(a for a in alerts if a.status == "firing"),
        resolved=tuple(a for a in alerts if a.status == "resolved"),
        group_started_at=T0,
        sequence=1,
        idempotency_key="k",
    )


def texts(block: dict[str, Any]) -> list[str]:
    found = [block["text"]["text"]] if "text" in block else []
    found += [f["text"] for f in block.get("fields", [])]
    found += [e["text"] for e in block.get("elements", [])]
    return found


def alert_sections(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == "section" and "fields" in b]


# --- rendering ------------------------------------------------------------------------------------


def test_one_firing_limit_alert() -> None:
    message = slack_message(notification(alert()), external_url="https://riskmon.example/alerts")
    blocks = validate_message(message)
    assert "channel" not in message
    assert message["attachments"][0]["color"] == CRITICAL
    assert [b["type"] for b in blocks] == ["header", "section", "context", "context"]
    assert blocks[0]["text"]["text"] == "[FIRING:1] ExposureLimitBreach critical — sol-desk"
    section = blocks[1]
    assert section["text"]["text"].startswith("*Firing:* Desk sol-desk net notional on SOL-PERP is $1,250,000")
    assert [f["text"] for f in section["fields"]] == [
        "*Desk*\nsol-desk",
        "*Market*\nSOL-PERP",
        "*Value*\n1250000.00",
        "*Limit*\n1000000.00 (net_notional)",
        "*Severity*\ncritical",
        "*Started*\n2023-11-14T22:12:20Z",
    ]
    assert blocks[2]["elements"][0]["text"].startswith("Desk sol-desk net notional reached $1,250,000")
    assert blocks[3]["elements"][0]["text"] == "<https://riskmon.example/alerts|Open in riskmon>"
    assert message["text"].startswith("[FIRING:1] ExposureLimitBreach critical — sol-desk\n• Desk sol-desk")
    assert slack_message(notification(alert()), channel="#risk")["channel"] == "#risk"


def test_mixed_group_lists_firing_first_then_resolved_with_dividers() -> None:
    warn = alert(severity="warning", market="ETH-PERP", summary="eth warn")
    resolved = alert("resolved", market="BTC-PERP", summary="btc back under", ts=T0 + 30)
    crit = alert(market="SOL-PERP", summary="sol crit")
    message = slack_message(notification(resolved, warn, crit))
    blocks = validate_message(message)
    assert message["attachments"][0]["color"] == CRITICAL  # the highest firing severity wins
    assert blocks[0]["text"]["text"] == "[FIRING:2] ExposureLimitBreach critical — sol-desk"
    kinds = [b["type"] for b in blocks]
    assert kinds == ["header", *["section", "context", "divider"] * 2, "section", "context"]
    sections = alert_sections(blocks)
    assert [s["text"]["text"] for s in sections] == [
        "*Firing:* eth warn",
        "*Firing:* sol crit",
        "*Resolved:* btc back under",
    ]
    assert "*Ended*\n2023-11-14T22:13:50Z" in [f["text"] for f in sections[2]["fields"]]
    assert all("*Ended*" not in f["text"] for s in sections[:2] for f in s["fields"])
    only_warning = slack_message(notification(warn, resolved))
    assert only_warning["attachments"][0]["color"] == WARNING
    info = slack_message(notification(alert(severity="info"), alert(severity="page-me", market="X")))
    assert info["attachments"][0]["color"] == INFO  # an unknown severity ranks below info


def test_all_resolved_is_green_with_a_resolved_header() -> None:
    message = slack_message(notification(alert("resolved", ts=T0 + 5), alert("resolved", market="ETH", ts=T0 + 6)))
    blocks = validate_message(message)
    assert message["attachments"][0]["color"] == GREEN
    assert blocks[0]["text"]["text"] == "[RESOLVED] ExposureLimitBreach critical — sol-desk"
    assert message["text"].startswith("[RESOLVED]")


def many(n: int, *, description: bool, resolved_every: int = 0) -> list[AlertTransition]:
    out = []
    for i in range(n):
        status = "resolved" if resolved_every and i % resolved_every == 0 else "firing"
        out.append(alert(status, market=f"M{i:03d}", summary=f"alert {i}", description="d" if description else None))
    return out


def test_200_alerts_fill_exactly_50_blocks_and_count_the_rest() -> None:
    alerts = many(200, description=True, resolved_every=10)
    message = slack_message(notification(*alerts), external_url="https://riskmon.example")
    blocks = validate_message(message)
    assert len(blocks) == 50
    shown = alert_sections(blocks)
    # header + 2 blocks for the first alert + 3 (divider, section, context) per further one + more + link
    assert len(shown) == 16
    more = blocks[-2]
    assert more["type"] == "section"
    assert more["text"]["text"] == "…and 184 more alerts (164 firing, 20 resolved)"
    assert blocks[-1]["elements"][0]["text"].startswith("<https://riskmon.example|")
    # Firing first: the 16 shown are the first 16 firing alerts in order.
    firing_markets = [a.labels["market"] for a in alerts if a.status == "firing"][:16]
    assert [s["fields"][1]["text"].split("\n")[1] for s in shown] == firing_markets
    assert message["text"].count("\n• ") == 200  # short summaries: the fallback lists them all


def test_block_budget_boundary_is_exact() -> None:
    # Without descriptions or a link an alert takes 2 blocks (divider, section): 25 fit exactly.
    fits = validate_message(slack_message(notification(*many(25, description=False))))
    assert len(fits) == 50
    assert len(alert_sections(fits)) == 25
    assert "more" not in fits[-1]["text"]["text"]
    over = validate_message(slack_message(notification(*many(26, description=False))))
    assert len(alert_sections(over)) == 24
    assert over[-1]["text"]["text"] == "…and 2 more alerts (2 firing, 0 resolved)"
    assert len(over) == 49
    one_more = validate_message(slack_message(notification(*many(25, description=True))))
    assert one_more[-1]["text"]["text"].startswith("…and 9 more alerts")  # 1 + 2 + 3*15 + 1 = 49


def test_long_texts_are_cut_to_slack_limits_with_an_ellipsis() -> None:
    long = alert(summary="S" * 10_000, description="D" * 10_000, market="M" * 5000, extra={"venue": "v" * 3000})
    message = slack_message(notification(long, group_labels={"desk": "x" * 400}))
    blocks = validate_message(message)
    header = blocks[0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")
    section = blocks[1]
    assert len(section["text"]["text"]) == 3000
    assert section["text"]["text"] == "*Firing:* " + "S" * (3000 - 11) + "…"
    market = next(f["text"] for f in section["fields"] if f["text"].startswith("*Market*"))
    assert len(market) == 2000
    assert market.endswith("M…")
    assert len(blocks[2]["elements"][0]["text"]) == 3000
    prefix = "[FIRING:1] ExposureLimitBreach critical — "
    assert message["text"] == prefix + "x" * (299 - len(prefix)) + "…\n• " + "S" * 299 + "…"
    crowd = slack_message(notification(*(alert(summary=f"{i:03d}" + "s" * 400, market=str(i)) for i in range(50))))
    lines = crowd["text"].split("\n")
    assert len(crowd["text"]) <= 3000
    assert lines[-1] == f"…and {50 - (len(lines) - 2)} more"
    assert [line[2:5] for line in lines[1:-1]] == [f"{i:03d}" for i in range(len(lines) - 2)]


def test_market_names_cannot_inject_mentions_or_links() -> None:
    hostile = "SOL <!channel> & <https://evil.example|click> <@U123>"
    bad = alert(market=hostile, summary=f"breach on {hostile}", description=f"see {hostile}")
    message = slack_message(notification(bad, group_labels={"desk": "sol-desk", "market": hostile}))
    blocks = validate_message(message)
    every_text = [t for b in blocks for t in texts(b) if b["type"] != "header"] + [message["text"]]
    for text in every_text:
        assert "<!channel>" not in text
        assert "<https://evil" not in text
        assert "<@U123>" not in text
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None  # every & is an escape
    escaped = "SOL &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; &lt;@U123&gt;"
    assert f"*Market*\n{escaped}" in texts(blocks[1])
    assert blocks[1]["text"]["text"] == f"*Firing:* breach on {escaped}"
    # Cutting never leaves half an escape behind.
    amp = validate_message(slack_message(notification(alert(summary="&" * 5000))))
    cut = amp[1]["text"]["text"]
    assert cut.endswith("&amp;…")
    assert len(cut) <= 3000


def with_resolution(transition: AlertTransition, resolution: str) -> AlertTransition:
    return msgspec.structs.replace(transition, annotations={**transition.annotations, "resolution": resolution})


def test_a_resolved_alert_shows_why_it_resolved_under_its_firing_summary() -> None:
    released = with_resolution(
        alert("resolved", summary="tot quote q1: confirmation deadline missed", ts=T0 + 30),
        "the venue released it (withdrawn); its pending exposure is released",
    )
    message = slack_message(notification(released))
    blocks = validate_message(message)
    assert [b["type"] for b in blocks] == ["header", "section", "context"]  # no block of its own
    assert blocks[1]["text"]["text"] == (
        "*Resolved:* tot quote q1: confirmation deadline missed\n"
        "*Resolution:* the venue released it (withdrawn); its pending exposure is released"
    )
    assert message["text"].endswith(
        "\n• tot quote q1: confirmation deadline missed — the venue released it (withdrawn); its pending exposure "
        "is released"
    )
    # Only on a resolved alert (the tracker never puts it on a firing one; Slack does not trust that).
    firing = with_resolution(alert(summary="sol crit"), "should not show")
    assert "should not show" not in json.dumps(slack_message(notification(firing)))


def test_a_long_summary_cannot_cut_the_resolution_away_and_it_is_escaped() -> None:
    hostile = "back to $1.00 <!channel> & <https://evil.example|click>"
    long = with_resolution(alert("resolved", summary="S" * 10_000), hostile)
    message = slack_message(notification(long))
    blocks = validate_message(message)
    text = blocks[1]["text"]["text"]
    assert len(text) <= 3000
    assert text.startswith("*Resolved:* SSS")
    assert text.endswith("…\n*Resolution:* back to $1.00 &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;")
    assert "<!channel>" not in message["text"]
    huge = with_resolution(alert("resolved"), "R" * 5000)
    section = validate_message(slack_message(notification(huge)))[1]["text"]["text"]
    assert section.endswith("R…")
    assert section.startswith("*Resolved:* Desk sol-desk net notional")


def test_same_notification_same_bytes() -> None:
    first = notification(alert(), alert("resolved", market="ETH", ts=T0 + 9))
    reordered = alert(extra={"venue": "mango"})
    shuffled = msgspec.structs.replace(reordered, labels=dict(reversed(list(reordered.labels.items()))))
    assert list(shuffled.labels) != list(reordered.labels)
    assert slack_body(first) == slack_body(notification(*first.firing, *first.resolved))
    assert slack_body(notification(reordered)) == slack_body(notification(shuffled))
    assert json.loads(slack_body(first, channel="#c")) == slack_message(first, channel="#c")


# --- delivery to a loopback Slack -----------------------------------------------------------------


@dataclass
class FakeSlack:
    """Answers like hooks.slack.com: "ok", a 429 with Retry-After, or 400 "invalid_payload"/"invalid_blocks"."""

    script: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive) or b""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.bodies.append(body)
        self.paths.append(scope["path"])
        if scope["method"] != "POST" or headers.get("content-type") != "application/json":
            await respond(send, 400, b"invalid_payload", "text/plain")
            return
        if self.script:
            status, answer, extra = self.script.pop(0)
            await respond(send, status, answer, "text/plain", [(k.encode(), v.encode()) for k, v in extra.items()])
            return
        try:
            validate_message(json.loads(body))
        except (AssertionError, KeyError, ValueError):
            await respond(send, 400, b"invalid_blocks", "text/plain")
            return
        await respond(send, 200, b"ok", "text/plain")


HOOK_PATH = "/services/T0001/B0002/XXXXsecretXXXX"


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[tuple[FakeSlack, str]]:
    app = FakeSlack()
    server = AsgiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}{HOOK_PATH}"
    finally:
        await server.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_webhook_sender_delivers_rendered_messages_to_a_loopback_slack(slack: tuple[FakeSlack, str]) -> None:
    app, url = slack
    storm = notification(*many(200, description=True, resolved_every=7))
    hostile = notification(alert(market="<!channel> & co"))
    async with httpx.AsyncClient(trust_env=False) as client:
        sender = WebhookSender(url, hmac_secret=None, timeout=5, client=client, clock=lambda: T0)
        ok = await sender.send(slack_body(storm, channel="#risk"), storm.idempotency_key)
        assert (ok.ok, ok.status) == (True, 200)

        app.script = [(429, b"rate_limited", {"Retry-After": "30"}), (400, b"invalid_payload", {})]
        limited = await sender.send(slack_body(hostile), "k2")
        assert (limited.ok, limited.status, limited.retryable, limited.retry_after) == (False, 429, True, 30.0)
        refused = await sender.send(slack_body(hostile), "k2")
        assert (refused.ok, refused.status, refused.retryable) == (False, 400, False)
        for result in (limited, refused):
            assert result.error is not None
            assert "XXXXsecretXXXX" not in result.error
            assert "/services" not in result.error
        again = await sender.send(slack_body(hostile), "k2")
        assert again.ok

        broken = json.dumps({"text": "x", "attachments": [{"color": "#E01E5A", "blocks": [{"type": "table"}]}]})
        rejected = await sender.send(broken.encode(), "k3")
        assert (rejected.status, rejected.retryable) == (400, False)  # the fake's validator really checks

    assert app.paths == [HOOK_PATH] * 5
    received = [json.loads(b) for b in app.bodies[:4]]
    for message in received:
        validate_message(message)
    assert received[0] == slack_message(storm, channel="#risk")
    assert received[0]["attachments"][0]["blocks"][-1]["text"]["text"].startswith("…and ")
    assert received[1] == received[3] == slack_message(hostile)
    assert "<!channel>" not in app.bodies[3].decode()
