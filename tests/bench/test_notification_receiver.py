"""The benchmark's webhook receiver: a real HTTP/1.1 server on loopback that times each
notification by its first bytes and reads the breach out of its `value` annotations."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from riskmon.bench.notification_receiver import NotificationReceiver


def _payload(status: str, *values: str) -> bytes:
    alerts = [{"status": status, "labels": {}, "annotations": {"value": v}} for v in values]
    return json.dumps({"version": "4", "status": status, "alerts": alerts}).encode()


def _request(body: bytes, extra: str = "") -> bytes:
    head = f"POST /alerts HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}content-length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.mark.asyncio
async def test_notifications_on_one_kept_alive_connection_are_logged_in_order() -> None:
    receiver = NotificationReceiver()
    port = await receiver.start()
    try:
        before = time.monotonic()
        async with httpx.AsyncClient() as client:
            first = await client.post(
                f"http://127.0.0.1:{port}/alerts", content=_payload("firing", "1500.00", "1500.00")
            )
            second = await client.post(f"http://127.0.0.1:{port}/alerts", content=_payload("resolved", "900.00"))
        after = time.monotonic()
    finally:
        await receiver.stop()
    assert (first.status_code, first.text, second.status_code) == (200, "ok", 200)
    log = receiver.log.notifications
    assert [(status, values) for _, status, values in log] == [
        ("firing", ["1500.00", "1500.00"]),
        ("resolved", ["900.00"]),
    ]
    assert before <= log[0][0] <= log[1][0] <= after
    assert receiver.log.firing() == 1


@pytest.mark.asyncio
async def test_pipelined_requests_in_one_read_each_get_an_answer() -> None:
    receiver = NotificationReceiver()
    port = await receiver.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(_payload("firing", "1")) + _request(_payload("firing", "2")))
        await writer.drain()
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            assert chunk, "the receiver hung up"
            answers += chunk
        writer.close()
    finally:
        await receiver.stop()
    assert [values for _, _, values in receiver.log.notifications] == [["1"], ["2"]]


@pytest.mark.asyncio
async def test_a_body_that_is_not_a_webhook_payload_is_refused_and_counted() -> None:
    receiver = NotificationReceiver()
    port = await receiver.start()
    try:
        async with httpx.AsyncClient() as client:
            refused = await client.post(f"http://127.0.0.1:{port}/alerts", content=b"not json")
            listed = await client.post(f"http://127.0.0.1:{port}/alerts", content=b"[1, 2]")
            ok = await client.post(f"http://127.0.0.1:{port}/alerts", content=_payload("firing", "7"))
    finally:
        await receiver.stop()
    assert (refused.status_code, listed.status_code, ok.status_code) == (400, 400, 200)
    assert receiver.log.rejected == 2
    assert [values for _, _, values in receiver.log.notifications] == [["7"]]


@pytest.mark.asyncio
async def test_a_request_that_is_not_http_gets_400_and_the_connection_closes() -> None:
    receiver = NotificationReceiver()
    port = await receiver.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01 not an http request\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await receiver.stop()
    assert answer.startswith(b"HTTP/1.1 400")
    assert receiver.log.notifications == []


@pytest.mark.asyncio
async def test_a_client_that_asks_to_close_gets_its_answer_then_the_connection_ends() -> None:
    receiver = NotificationReceiver()
    port = await receiver.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(_payload("firing", "3"), extra="connection: close\r\n"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: the receiver hung up
        writer.close()
    finally:
        await receiver.stop()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"\r\n\r\nok")
    assert [values for _, _, values in receiver.log.notifications] == [["3"]]
