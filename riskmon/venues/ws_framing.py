"""Websocket framing, pure: a server's byte stream in, messages and stop decisions out.

websockets' generator-based frame parser costs ~2 us a frame, more than decoding a venue's frame.
Once a connection is open, `scan_frames` finds frame boundaries itself and takes the common case
straight out of the read buffer: a whole, unmasked, final TEXT or BINARY frame with no reserved
bits, within max_size, while no fragmented message is open. It stops at anything else and says
why, so the connection can hand that frame (or the rest of the stream) to the websockets protocol,
whose parser then always sits on a frame boundary and whose state (fragments, close, pongs to send)
stays its own; `MessageFragments` joins the data frames that parser yields into messages. No
sockets, no clocks: tests feed bytes and read the decisions.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from websockets.frames import Frame, Opcode

# First header byte of a final, unfragmented frame with no reserved bits: the fast path's two cases.
_FINAL_TEXT = 0x81
_FINAL_BINARY = 0x82
_MASKED = 0x80
_LENGTH_16 = 126  # the 7-bit length saying "a 16-bit length follows"
_LENGTH_64 = 127
_unpack_length_64 = struct.Struct("!Q").unpack_from

HEADERS_END: Final = b"\r\n\r\n"
# The close a client sends for a text message that is not UTF-8 (RFC 6455 7.4.1), as websockets words it.
INVALID_UTF8_CODE: Final = 1007
INVALID_UTF8_REASON: Final = "invalid UTF-8 in a text message"

Message = str | bytes


class ScanStop(IntEnum):
    """Why `scan_frames` returned; `(stop, pos, end)` says where."""

    DONE = 0  # every byte read; pos == len(data)
    # data[pos:] is the start of a frame: keep it until it holds `end` bytes, then scan it again.
    PARTIAL = 1
    # data[pos:end] is a whole frame the protocol must read: control, fragment, reserved bits, or any
    # data frame while a fragmented message is open. Scan on from `end` once the protocol has it.
    PROTOCOL_FRAME = 2
    # data[pos:] starts with no sound frame header for the fast path (a masked server frame, a length
    # over max_size): the protocol reads it and everything after it, and fails the connection.
    UNSOUND = 3
    # data[pos:end] is a text frame that is not UTF-8: fail with INVALID_UTF8_CODE; data[end:] is
    # discarded by the failed protocol.
    INVALID_UTF8 = 4


# The members as module globals: on CPython 3.11 an Enum member lookup costs ~0.2 us, a global ~15 ns,
# and the scan returns once per socket read.
DONE: Final = ScanStop.DONE
PARTIAL: Final = ScanStop.PARTIAL
PROTOCOL_FRAME: Final = ScanStop.PROTOCOL_FRAME
UNSOUND: Final = ScanStop.UNSOUND
INVALID_UTF8: Final = ScanStop.INVALID_UTF8


def scan_frames(
    data: bytes, pos: int, max_frame: int | None, whole_messages: bool, messages: list[Message]
) -> tuple[ScanStop, int, int]:
    """Append the message of every fast-path frame from `pos` on; stop at the first other one.

    `whole_messages`: no fragmented message is open, so a final data frame is a message on its own.
    One call per stretch of fast frames, not per frame: the loop is the hot path of every read.
    """
    size = len(data)
    while pos < size:
        if size - pos < 2:
            return PARTIAL, pos, 2
        head = data[pos]
        length = data[pos + 1]
        if length & _MASKED:
            return UNSOUND, pos, size  # a server must not mask: the protocol fails it (1002)
        start = pos + 2
        if length == _LENGTH_16:
            start += 2
            if start > size:
                return PARTIAL, pos, 4
            length = (data[pos + 2] << 8) | data[pos + 3]
        elif length == _LENGTH_64:
            start += 8
            if start > size:
                return PARTIAL, pos, 10
            (length,) = _unpack_length_64(data, pos + 2)
        if max_frame is not None and length > max_frame:
            return UNSOUND, pos, size  # the protocol closes with 1009 as soon as it sees the header
        end = start + length
        if end > size:
            return PARTIAL, pos, end - pos
        if head == _FINAL_TEXT and whole_messages:
            try:
                messages.append(data[start:end].decode())
            except UnicodeDecodeError:
                return INVALID_UTF8, pos, end
        elif head == _FINAL_BINARY and whole_messages:
            messages.append(data[start:end])
        else:
            return PROTOCOL_FRAME, pos, end
        pos = end
    return DONE, pos, pos


class MessageFragments:
    """Joins the data frames the protocol parsed into messages (websockets has checked their order)."""

    __slots__ = ("_parts", "_text")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._text = False

    def message(self, frame: Frame) -> Message | None:
        """The data message this frame completes, or None (a first or middle fragment, a control frame).

        Raises UnicodeDecodeError for a text message that is not UTF-8 (close with INVALID_UTF8_CODE).
        """
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._parts = [bytes(frame.data)]
                self._text = opcode is Opcode.TEXT
                return None
            return str(frame.data, "utf-8") if opcode is Opcode.TEXT else bytes(frame.data)
        if opcode is Opcode.CONT:
            self._parts.append(bytes(frame.data))
            if not frame.fin:
                return None
            data, self._parts = b"".join(self._parts), []
            return str(data, "utf-8") if self._text else data
        return None  # pings are answered by the protocol itself; close frames end the connection


def find_headers_end(tail: bytes, data: bytes) -> tuple[int, bytes]:
    """Where the HTTP response headers end in `data`, given the last bytes read before it.

    Returns (offset in `data` just past the blank line, or -1; the tail to keep for the next read),
    since the blank line may span reads.
    """
    joined = tail + data
    found = joined.find(HEADERS_END)
    if found < 0:
        return -1, joined[-(len(HEADERS_END) - 1) :]
    return found + len(HEADERS_END) - len(tail), b""
