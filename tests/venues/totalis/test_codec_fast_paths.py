"""The Totalis codec's one-decode path: a frame with a `data` object is read header and payload in
one pass; every other frame is read as before (header first, then the payload from `data` or the
top level). The two paths must agree on every frame, and a frame nested too deeply is a drop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

import riskmon.venues.totalis.codec as codec_module
from riskmon.bench.venue_frames import TOTALIS_MM, TotalisSource
from riskmon.config.schema import TotalisRfqVenue
from riskmon.config.types import Secret
from riskmon.events import FrameMalformed, Heartbeat, QuoteUpdate, RfqPositionUpdate
from riskmon.venues.totalis import frames
from riskmon.venues.totalis.codec import TotalisRfqCodec

API_KEY = "tk_live_DO_NOT_LOG_7f3a"
MM = "did:privy:mm-alpha"
QUOTES = f"mm:quotes:{MM}"


def new_codec(mm: str = MM) -> TotalisRfqCodec:
    codec = TotalisRfqCodec("totalis", {mm: "parlays"}, None, TotalisRfqVenue(api_key=Secret(API_KEY)))
    codec.connection_opened()
    codec.receive_text(json.dumps({"type": "auth:success", "user_id": mm}))
    codec.data_to_send()
    return codec


class _Refusing:
    """Stands in for the one-pass decoder: every frame then takes the header-first path."""

    def decode(self, text: str) -> Any:
        raise msgspec.DecodeError("refused")


ODD_FRAMES = [
    # data not an object, or absent: the payload is the top level
    '{"type":"quote:expired","channel":"' + QUOTES + '","quote_id":"q-1","rfq_id":"r-1","data":"x"}',
    '{"event":"quote:withdrawn","quote_id":"q-2","rfq_id":"r-2"}',
    '{"type":"quote:rejected","channel":"' + QUOTES + '","data":null,"quote_id":"q-3","reason":"late"}',
    # a payload field of an odd type: a drop for a quote event, not for a control frame
    '{"type":"quote:confirmed","data":{"quote_id":"q-4","reason":7}}',
    '{"type":"pong","data":{"reason":7,"timestamp":"2025-02-07T12:00:00.000Z"}}',
    '{"type":"subscribed","data":{"channel":"rfq:r-9","message":["x"]},"channel":"rfq:r-9"}',
    # names under `event` or `type`, unknown ones, none
    '{"event":"position:created","data":{"rfq_id":"r-5","position_pda":"pda","timestamp":1780000000000}}',
    '{"type":"quote:teleported","data":{"quote_id":"q-6"}}',
    '{"type":"Secret_' + API_KEY + '","data":{}}',
    '{"data":{"quote_id":"q-7"}}',
    '{"type":7,"data":{}}',
    # unknown fields at both levels
    '{"type":"quote:accepted","channel":"' + QUOTES + '","v":2,"data":{"quote_id":"q-8","rfq_id":"r-8",'
    '"confirmation_deadline":"2026-06-01T18:45:45Z","extra":{"deep":[1,2,{"x":null}]},"mm_cost":"81.25"}}',
    '{"type":"quote:accepted","data":{"quote_id":"q-9","confirmation_deadline":"soon"}}',
    '{"type":"mm_quote:accepted","data":{"quote_id":"q-10","quote":{"mm_cost":"NaN"}}}',
    "not json",
    "[1,2]",
]


def _both_ways(frames: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    fast, slow = new_codec(), new_codec()
    fast_out = [(fast.receive_text(f), fast.data_to_send()) for f in frames]
    with monkeypatch.context() as patched:
        patched.setattr(codec_module, "framed_decoder", _Refusing())
        slow_out = [(slow.receive_text(f), slow.data_to_send()) for f in frames]
    return fast_out, slow_out


def test_odd_frames_read_the_same_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _both_ways(ODD_FRAMES, monkeypatch)
    assert fast == slow
    events = [event for frame_events, _ in fast for event in frame_events]
    assert sum(isinstance(e, FrameMalformed) for e in events) == 9
    # The pong's payload is unusable, so its stamp is lost, but never the liveness signal itself.
    assert Heartbeat("totalis", "", None) in events
    assert not any(API_KEY in e.reason for e in events if isinstance(e, FrameMalformed))


def test_simulator_frames_read_the_same_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = asyncio.run(TotalisSource().frames(120))
    fast_codec = new_codec(TOTALIS_MM)
    events = [event for text in frames for event in fast_codec.receive_text(text)]
    assert {type(e) for e in events} == {QuoteUpdate, RfqPositionUpdate}
    assert len(events) == 120
    fast, slow = _both_ways(frames, monkeypatch)
    assert fast == slow


def test_the_one_decode_is_taken_for_a_data_object(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = frames.envelope_decoder

    class Counting:
        def decode(self, text: str) -> Any:
            decoded.append(text)
            return real.decode(text)

    codec = new_codec()
    monkeypatch.setattr(codec_module, "envelope_decoder", Counting())
    busy = (
        '{"type":"quote:confirmed","channel":"' + QUOTES + '","data":{"quote_id":"q","rfq_id":"r","execution_id":"e"}}'
    )
    (update,) = codec.receive_text(busy)
    assert isinstance(update, QuoteUpdate)
    assert update.execution_id == "e"
    assert decoded == []
    codec.receive_text(ODD_FRAMES[0])
    assert decoded == [ODD_FRAMES[0]]


DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"quote:accepted","data":{"quote_id":"q","x":' + DEEP + "}}",
        '{"type":"quote:accepted","x":' + DEEP + "}",
        '{"type":"pong","data":' + DEEP + "}",
    ],
)
def test_a_frame_nested_too_deeply_is_one_counted_drop(frame: str) -> None:
    (event,) = new_codec().receive_text(frame)
    assert event == FrameMalformed("totalis", "not JSON")
