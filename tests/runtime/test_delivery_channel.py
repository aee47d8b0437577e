"""The socket between riskmon and its delivery process: every message arrives whole and in order,
however the stream is cut into reads, and a corrupt length ends the connection."""

from __future__ import annotations

import asyncio
import socket

import pytest

from riskmon.runtime.delivery_channel import MAX_MESSAGE, Channel, ChannelError, Message

MESSAGES: list[Message] = [
    ("submit", 1, 1.5, [b"x" * 3000]),
    ("committed", 1),
    ("stats", {("hook", "sent"): 2}, {"hook": 0}, {}),
    ("stop",),
]


class Wire(asyncio.Transport):
    """Captures what a Channel writes, as the bytes its peer will read."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


def encoded(messages: list[Message]) -> bytes:
    sender = Channel(lambda _: None, lambda: None)
    wire = Wire()
    sender.connection_made(wire)
    for message in messages:
        assert sender.send(message)
    return bytes(wire.written)


def receiver() -> tuple[Channel, list[Message]]:
    got: list[Message] = []
    return Channel(got.append, lambda: None), got


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 7, 1000, 3017, 3030, 100_000])
def test_messages_arrive_whole_and_in_order_however_the_reads_cut_them(cut: int) -> None:
    stream = encoded(MESSAGES)
    channel, got = receiver()
    for start in range(0, len(stream), cut):
        channel.data_received(stream[start : start + cut])
    assert got == MESSAGES


def test_a_read_that_ends_inside_a_message_keeps_the_rest_for_the_next() -> None:
    stream = encoded(MESSAGES)
    channel, got = receiver()
    first = len(encoded(MESSAGES[:1]))
    channel.data_received(stream[: first + 3])  # one whole message and a header's first bytes
    assert got == MESSAGES[:1]
    channel.data_received(stream[first + 3 :])
    assert got == MESSAGES


def test_a_length_past_the_limit_is_a_broken_peer() -> None:
    channel, got = receiver()
    with pytest.raises(ChannelError):
        channel.data_received((MAX_MESSAGE + 1).to_bytes(4, "big") + b"junk")
    assert got == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_over_a_socket_pair_each_side_gets_the_others_messages_and_the_close() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    got: list[Message] = []
    closed = asyncio.Event()
    received_all = asyncio.Event()

    def on_message(message: Message) -> None:
        got.append(message)
        if len(got) == 200:
            received_all.set()

    parent = Channel(lambda _: None, lambda: None)
    child = Channel(on_message, closed.set)
    await loop.create_unix_connection(lambda: parent, sock=ours)
    await loop.create_unix_connection(lambda: child, sock=theirs)
    sent = [("submit", n, float(n), [bytes([n % 256]) * (n * 997 % 70_000)]) for n in range(200)]
    for message in sent:
        assert parent.send(message)
    await asyncio.wait_for(received_all.wait(), timeout=5)
    assert got == sent
    parent.close()
    await asyncio.wait_for(closed.wait(), timeout=5)
    assert not child.open
    assert not parent.send(("stop",))
