"""The field order of the events the codecs build positionally (FillReceived, FillRevoked, MarkPrice):
a reorder would put a price where a quantity goes without any type error at the call site, so it
must fail here first."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from riskmon.engine.fills import decode_fill, encode_fill
from riskmon.events import FillReceived, FillRevoked, Liquidity, MarkKind, MarkPrice, Side

PINNED: list[tuple[type[msgspec.Struct], list[tuple[str, object, object]]]] = [
    (
        FillReceived,
        [
            ("venue", str, msgspec.NODEFAULT),
            ("desk", str, msgspec.NODEFAULT),
            ("account", str, msgspec.NODEFAULT),
            ("market", str, msgspec.NODEFAULT),
            ("side", Side, msgspec.NODEFAULT),
            ("quantity", Decimal, msgspec.NODEFAULT),
            ("price", Decimal, msgspec.NODEFAULT),
            ("fill_key", str, msgspec.NODEFAULT),
            ("stream", str, msgspec.NODEFAULT),
            ("sequence", int, msgspec.NODEFAULT),
            ("liquidity", Liquidity, msgspec.NODEFAULT),
            ("fee_rate", Decimal, msgspec.NODEFAULT),
            ("venue_ts", float, msgspec.NODEFAULT),
            ("as_of", int | None, None),
        ],
    ),
    (
        FillRevoked,
        [
            ("venue", str, msgspec.NODEFAULT),
            ("fill_key", str, msgspec.NODEFAULT),
            ("stream", str, msgspec.NODEFAULT),
            ("market", str, msgspec.NODEFAULT),
            ("sequence", int, msgspec.NODEFAULT),
        ],
    ),
    (
        MarkPrice,
        [
            ("venue", str, msgspec.NODEFAULT),
            ("market", str, msgspec.NODEFAULT),
            ("price", Decimal, msgspec.NODEFAULT),
            ("venue_ts", float, msgspec.NODEFAULT),
            ("kind", MarkKind, MarkKind.TRADE),
        ],
    ),
]


@pytest.mark.parametrize(("event", "pinned"), PINNED, ids=[event.__name__ for event, _ in PINNED])
def test_field_order_type_and_default_are_pinned(
    event: type[msgspec.Struct], pinned: list[tuple[str, object, object]]
) -> None:
    fields = msgspec.structs.fields(event)
    assert [(f.name, f.type, f.default) for f in fields] == pinned


def test_positional_construction_puts_each_value_in_its_named_field() -> None:
    fill = FillReceived(
        "mango", "perp-desk", "acct", "SOL-PERP", Side.SELL, Decimal("2.5"), Decimal("150.25"),
        "key-1", "queue-1", 41, Liquidity.MAKER, Decimal("-0.0002"), 1_700_000_000.5, 9,
    )  # fmt: skip
    assert (fill.quantity, fill.price, fill.fee_rate) == (Decimal("2.5"), Decimal("150.25"), Decimal("-0.0002"))
    assert (fill.fill_key, fill.stream, fill.sequence, fill.as_of) == ("key-1", "queue-1", 41, 9)
    revoke = FillRevoked("mango", "key-1", "queue-1", "SOL-PERP", 41)
    assert (revoke.fill_key, revoke.stream, revoke.market, revoke.sequence) == ("key-1", "queue-1", "SOL-PERP", 41)
    mark = MarkPrice("phoenix", "SOL", Decimal("150.5"), 1_700_000_000.0, MarkKind.MID)
    assert (mark.market, mark.price, mark.venue_ts, mark.kind) == ("SOL", Decimal("150.5"), 1_700_000_000.0, "mid")


def test_a_stored_fill_reads_back_field_for_field() -> None:
    fill = FillReceived(
        "mango", "perp-desk", "acct", "SOL-PERP", Side.BUY, Decimal("3"), Decimal("99.5"),
        "key-2", "queue-2", 7, Liquidity.TAKER, Decimal("0.0005"), 1_700_000_001.25, 12,
    )  # fmt: skip
    assert decode_fill(encode_fill(fill)) == fill
    assert decode_fill(encode_fill(msgspec.structs.replace(fill, as_of=None))).as_of is None
