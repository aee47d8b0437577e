"""The demo's webhook sink: its scripted outage on virtual time, and its answers over loopback."""

from __future__ import annotations

import json

import httpx
import pytest

from riskmon.demo.sink import ALERTS_PATH, DemoWebhookSink, OutageScript


def test_outage_then_one_refusal_then_acceptance() -> None:
    script = OutageScript(outage=4.0)
    assert script.answer("a", 100.0) == 503  # the first POST starts the outage
    assert script.answer("a", 102.0) == 503
    assert script.answer("b", 103.9) == 503
    # After the outage, keys already seen are accepted; the first key not seen before is refused for good.
    assert script.answer("a", 104.0) == 200
    assert script.answer("c", 104.5) == 422
    assert script.answer("c", 110.0) == 422
    assert script.answer("d", 111.0) == 200
    assert script.answer("b", 111.5) == 200
    assert script.refused == "c"


def _body(alertname: str) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": alertname}}]}).encode()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_sink_answers_over_loopback_and_records_each_notification_once() -> None:
    now = [0.0]
    sink = DemoWebhookSink(outage=1.0, now=lambda: now[0])
    await sink.start()
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:

            async def post(key: str, body: bytes) -> httpx.Response:
                return await client.post(sink.url, content=body, headers={"Idempotency-Key": key})

            down = await post("k1", _body("A"))
            assert (down.status_code, down.headers["retry-after"]) == (503, "1")
            now[0] = 2.0
            assert (await post("k1", _body("A"))).status_code == 200
            assert (await post("k1", _body("A"))).status_code == 200  # a retry: acknowledged, not recorded again
            assert (await post("k2", _body("B"))).status_code == 422
            assert (await post("k3", b"{}")).status_code == 400  # not an Alertmanager v4 message
            assert (await post("k3", b"not json")).status_code == 400
            assert (await client.get(sink.url)).status_code == 405
            assert (await client.post(sink.url.replace(ALERTS_PATH, "/other"), content=_body("C"))).status_code == 404
    finally:
        await sink.stop()
    assert [payload["alerts"][0]["labels"]["alertname"] for payload in sink.received] == ["A"]
    assert sink.answers == {503: 1, 200: 2, 422: 1, 400: 2, 405: 1, 404: 1}
