"""Which RFQs the Totalis codec follows again after a reconnect, at scale: many live quotes and many
closed positions, through the codec and against a plain model of the rule (a quote holding or
converted keeps its RFQ followed, an open position too; a closed position ends it for good)."""

from __future__ import annotations

import json
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.config.schema import TotalisRfqVenue
from riskmon.config.types import Secret
from riskmon.events import QuoteStatus, QuoteUpdate, RfqPositionStatus
from riskmon.venues.totalis.codec import TotalisRfqCodec
from riskmon.venues.totalis.following import FollowedRfqs
from riskmon.venues.totalis.frames import CLOSED_POSITION, LIVE_QUOTE

MM = "did:privy:mm-alpha"
AUTH_OK = json.dumps({"type": "auth:success", "user_id": MM})
RFQS = 3000


def _codec() -> TotalisRfqCodec:
    codec = TotalisRfqCodec("totalis", {MM: "parlays"}, None, TotalisRfqVenue(api_key=Secret("tk_key")))
    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    codec.data_to_send()
    return codec


def _quote(name: str, quote_id: str, rfq_id: str | None) -> str:
    data = {"quote_id": quote_id} if rfq_id is None else {"quote_id": quote_id, "rfq_id": rfq_id}
    return json.dumps({"type": name, "channel": f"mm:quotes:{MM}", "data": data})


def _position(name: str, rfq_id: str) -> str:
    return json.dumps({"type": name, "channel": f"rfq:{rfq_id}", "data": {"rfq_id": rfq_id, "outcome": "won"}})


def _subscribed_rfqs(frames: list[str | bytes]) -> list[str]:
    channels = [json.loads(frame)["channel"] for frame in frames if json.loads(frame)["type"] == "subscribe"]
    return [channel.removeprefix("rfq:") for channel in channels if channel.startswith("rfq:")]


def test_many_live_quotes_and_many_closes_leave_exactly_the_open_rfqs_followed() -> None:
    codec = _codec()
    for i in range(RFQS):
        codec.receive_text(_quote("quote:accepted", f"q-{i}", f"rfq-{i}"))
        if i % 3 == 0:  # a second quote of ours on the same RFQ
            codec.receive_text(_quote("quote:confirmed", f"q-{i}b", f"rfq-{i}"))
    assert _subscribed_rfqs(codec.data_to_send()) == [f"rfq-{i}" for i in range(RFQS)]  # each once
    # Half the positions close, alternately settled and cancelled; a few more quotes simply expire.
    for i in range(0, RFQS, 2):
        codec.receive_text(_position("position:settled" if i % 4 == 0 else "position:cancelled", f"rfq-{i}"))
    for i in range(1, RFQS, 10):
        codec.receive_text(_quote("quote:expired", f"q-{i}", f"rfq-{i}"))
    # A quote whose RFQ closed is forgotten with it; a live one still names its RFQ when the venue does not.
    (closed,) = codec.receive_text(_quote("quote:executed", "q-2", None))
    (live,) = codec.receive_text(_quote("quote:executed", "q-3", None))
    assert isinstance(closed, QuoteUpdate)
    assert closed.rfq_id is None
    assert isinstance(live, QuoteUpdate)
    assert live.rfq_id == "rfq-3"
    # A late copy of a closed RFQ's quote does not make it followed again.
    codec.receive_text(_quote("quote:confirmed", "q-0b", "rfq-0"))
    assert codec.data_to_send() == []

    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    expected = [f"rfq-{i}" for i in range(1, RFQS, 2) if i % 10 != 1 or i % 3 == 0]
    assert _subscribed_rfqs(codec.data_to_send()) == expected


def test_reconciliation_closes_many_rfqs_in_one_body() -> None:
    codec = _codec()
    for i in range(RFQS):
        codec.receive_text(_quote("quote:confirmed", f"q-{i}", f"rfq-{i}"))
    codec.data_to_send()
    records = [
        {"id": f"q-{i}", "rfq_id": f"rfq-{i}", "status": "settled", "market_maker_id": MM} for i in range(0, RFQS, 3)
    ]
    events = codec.receive_rest("reconcile_quotes", json.dumps({"quotes": records}))
    assert len(events) == 2 * len(records)  # each record: its quote executed, its position closed
    assert codec.data_to_send() == []  # closed first: the executed quote does not follow its RFQ again
    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    assert _subscribed_rfqs(codec.data_to_send()) == [f"rfq-{i}" for i in range(RFQS) if i % 3 != 0]


class _Model:
    """The rule as first written: a quote -> RFQ dict rebuilt on every close."""

    def __init__(self, closed_kept: int) -> None:
        self.live_quotes: dict[str, str] = {}
        self.open_positions: dict[str, None] = {}
        self.closed: OrderedDict[str, None] = OrderedDict()
        self.closed_kept = closed_kept

    def followed(self) -> list[str]:
        live = dict.fromkeys([*self.live_quotes.values(), *self.open_positions])
        return [rfq_id for rfq_id in live if rfq_id not in self.closed]

    def quote(self, quote_id: str, rfq_id: str | None, status: QuoteStatus) -> None:
        if status not in LIVE_QUOTE:
            self.live_quotes.pop(quote_id, None)
        elif rfq_id is not None and rfq_id not in self.closed:
            self.live_quotes[quote_id] = rfq_id

    def position(self, rfq_id: str, status: RfqPositionStatus) -> None:
        if status in CLOSED_POSITION:
            self.open_positions.pop(rfq_id, None)
            self.live_quotes = {q: r for q, r in self.live_quotes.items() if r != rfq_id}
            self.closed[rfq_id] = None
            self.closed.move_to_end(rfq_id)
            while len(self.closed) > self.closed_kept:
                self.closed.popitem(last=False)
        elif rfq_id not in self.closed:
            self.open_positions[rfq_id] = None


_QUOTE_OP = st.tuples(
    st.just("quote"),
    st.sampled_from([f"q-{i}" for i in range(8)]),
    st.one_of(st.none(), st.sampled_from([f"r-{i}" for i in range(6)])),
    st.sampled_from(list(QuoteStatus)),
)
_POSITION_OP = st.tuples(
    st.just("position"),
    st.sampled_from([f"r-{i}" for i in range(6)]),
    st.sampled_from(list(RfqPositionStatus)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.one_of(_QUOTE_OP, _POSITION_OP), max_size=60), closed_kept=st.integers(1, 4))
def test_the_index_by_rfq_agrees_with_the_rule(ops: list[tuple[str, ...]], closed_kept: int) -> None:
    model, following = _Model(closed_kept), FollowedRfqs(closed_kept)
    for op in ops:
        before = set(model.followed())
        if op[0] == "quote":
            _, quote_id, rfq_id, quote_status = op
            assert following.rfq_of(quote_id) == model.live_quotes.get(quote_id)
            model.quote(quote_id, rfq_id, QuoteStatus(quote_status))
            started = following.quote_seen(quote_id, rfq_id, QuoteStatus(quote_status))
            # Named exactly when the RFQ starts being followed.
            assert started == (rfq_id if rfq_id is not None and rfq_id in set(model.followed()) - before else None)
        else:
            _, rfq_id, position_status = op
            model.position(rfq_id, RfqPositionStatus(position_status))
            started_position = following.position_seen(rfq_id, RfqPositionStatus(position_status))
            assert started_position == (rfq_id in set(model.followed()) - before)
        assert following.live_rfqs() == model.followed()
