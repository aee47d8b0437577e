"""The pure framing scanner: server byte streams in, messages and stop decisions out.

Frames are built with websockets' own serializer, so the scanner is checked against the library
whose parser it stands in for. The connection around it is tested in test_ws_connection_framing.py.
"""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from riskmon.venues.ws_framing import (
    INVALID_UTF8_CODE,
    INVALID_UTF8_REASON,
    Message,
    MessageFragments,
    ScanStop,
    find_headers_end,
    scan_frames,
)

MAX = 2**20


def wire(opcode: Opcode, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = False) -> bytes:
    data = Frame(opcode, payload, fin=fin).serialize(mask=mask)
    # The serializer refuses a reserved bit with no extension: set it by hand.
    return bytes((data[0] | 0x40,)) + data[1:] if rsv1 else data


def text(payload: str, *, fin: bool = True) -> bytes:
    return wire(Opcode.TEXT, payload.encode(), fin=fin)


def scan(data: bytes, *, pos: int = 0, max_frame: int | None = MAX, whole: bool = True) -> tuple[Message, ...]:
    """The messages of a scan that must read every byte."""
    messages: list[Message] = []
    assert scan_frames(data, pos, max_frame, whole, messages) == (ScanStop.DONE, len(data), len(data))
    return tuple(messages)


def test_short_16_bit_64_bit_and_binary_frames_are_taken_in_order() -> None:
    big = "y" * 70_000  # a 64-bit length
    data = text("a") + text("x" * 300) + wire(Opcode.BINARY, b"\x00\x01") + text(big) + text("caf\u00e9 \u2713")
    assert scan(data) == ("a", "x" * 300, b"\x00\x01", big, "caf\u00e9 \u2713")
    assert scan(b"") == ()


def test_scanning_starts_at_pos() -> None:
    data = text("skipped") + text("read")
    assert scan(data, pos=len(text("skipped"))) == ("read",)


def test_a_frame_cut_anywhere_says_how_many_bytes_it_needs_and_scans_whole_once_they_came() -> None:
    for payload in ("s", "m" * 300, "l" * 70_000):
        first = text("first")
        cut_frame = text(payload)
        header = {126: 4, 127: 10}.get(cut_frame[1], 2)  # bytes up to the end of the length
        for cut in [*range(1, 12), len(cut_frame) - 1]:
            if cut >= len(cut_frame):
                continue
            messages: list[Message] = []
            stop, pos, needed = scan_frames(first + cut_frame[:cut], 0, MAX, True, messages)
            assert (stop, pos) == (ScanStop.PARTIAL, len(first))
            assert messages == ["first"]
            assert needed == (2 if cut < 2 else header if cut < header else len(cut_frame))
            assert scan(cut_frame) == (payload,)


@pytest.mark.parametrize(
    "frame",
    [
        wire(Opcode.PING, b"hb"),
        wire(Opcode.PONG, b"unasked"),
        wire(Opcode.CLOSE, b"\x03\xe8"),
        text("frag-", fin=False),
        wire(Opcode.CONT, b"ment"),
        wire(Opcode.TEXT, b"deflated?", rsv1=True),
        wire(Opcode.BINARY, b"\x00", fin=False),
    ],
    ids=["ping", "pong", "close", "text-first-fragment", "continuation", "reserved-bit", "binary-first-fragment"],
)
def test_control_fragment_and_reserved_bit_frames_are_the_protocols_whole(frame: bytes) -> None:
    before = text("before")
    messages: list[Message] = []
    data = before + frame + text("after")
    stop, pos, end = scan_frames(data, 0, MAX, True, messages)
    assert (stop, pos, end) == (ScanStop.PROTOCOL_FRAME, len(before), len(before) + len(frame))
    assert messages == ["before"]
    assert scan(data, pos=end) == ("after",)


def test_while_a_fragmented_message_is_open_every_data_frame_is_the_protocols() -> None:
    for frame in (text("inside"), wire(Opcode.BINARY, b"inside")):
        messages: list[Message] = []
        assert scan_frames(frame, 0, MAX, False, messages) == (ScanStop.PROTOCOL_FRAME, 0, len(frame))
        assert messages == []


def test_a_masked_frame_is_unsound_and_the_rest_of_the_stream_is_the_protocols() -> None:
    data = text("ok") + wire(Opcode.TEXT, b"masked", mask=True) + text("after")
    messages: list[Message] = []
    assert scan_frames(data, 0, MAX, True, messages) == (ScanStop.UNSOUND, len(text("ok")), len(data))
    assert messages == ["ok"]


def test_a_frame_over_max_frame_is_unsound_as_soon_as_its_length_is_read() -> None:
    header_only = text("z" * 2048)[:4]
    messages: list[Message] = []
    assert scan_frames(text("small") + header_only, 0, 1024, True, messages) == (ScanStop.UNSOUND, 7, 11)
    assert messages == ["small"]
    assert scan(text("z" * 1024), max_frame=1024) == ("z" * 1024,)  # max_frame itself is allowed
    assert scan(text("z" * 70_000), max_frame=None) == ("z" * 70_000,)  # None: no limit


def test_invalid_utf8_stops_at_its_frame_and_names_the_close() -> None:
    bad = wire(Opcode.TEXT, b"\xff\xfe")
    data = text("ok") + bad + text("after")
    messages: list[Message] = []
    assert scan_frames(data, 0, MAX, True, messages) == (ScanStop.INVALID_UTF8, 4, 4 + len(bad))
    assert messages == ["ok"]
    assert (INVALID_UTF8_CODE, INVALID_UTF8_REASON) == (1007, "invalid UTF-8 in a text message")
    assert scan(wire(Opcode.BINARY, b"\xff\xfe")) == (b"\xff\xfe",)  # binary is never decoded


def test_fragments_are_joined_into_one_message_and_control_frames_give_none() -> None:
    fragments = MessageFragments()
    got = [
        fragments.message(Frame(Opcode.TEXT, b"caf\xc3", fin=False)),
        fragments.message(Frame(Opcode.PING, b"mid")),
        fragments.message(Frame(Opcode.CONT, b"\xa9 ", fin=False)),
        fragments.message(Frame(Opcode.CONT, b"ok")),
        fragments.message(Frame(Opcode.BINARY, b"\x00", fin=False)),
        fragments.message(Frame(Opcode.CONT, b"\x01")),
        fragments.message(Frame(Opcode.TEXT, b"whole")),
        fragments.message(Frame(Opcode.BINARY, b"\xff")),
        fragments.message(Frame(Opcode.PONG, b"p")),
    ]
    assert got == [None, None, None, "caf\u00e9 ok", None, b"\x00\x01", "whole", b"\xff", None]


def test_a_text_message_that_is_not_utf8_raises_whole_or_fragmented() -> None:
    fragments = MessageFragments()
    with pytest.raises(UnicodeDecodeError):
        fragments.message(Frame(Opcode.TEXT, b"\xff"))
    fragments.message(Frame(Opcode.TEXT, b"a", fin=False))
    with pytest.raises(UnicodeDecodeError):
        fragments.message(Frame(Opcode.CONT, b"\xc3"))
    assert fragments.message(Frame(Opcode.TEXT, b"next")) == "next"


def test_the_end_of_the_response_headers_is_found_across_every_split() -> None:
    response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    frames = text("first")
    stream = response + frames
    for cut in range(1, len(stream)):
        end, tail = find_headers_end(b"", stream[:cut])
        if end >= 0:
            assert (cut >= len(response), end, tail) == (True, len(response), b"")
            continue
        assert cut < len(response)
        assert tail == stream[:cut][-3:]
        end, _ = find_headers_end(tail, stream[cut:])
        assert stream[cut:][end:] == frames
