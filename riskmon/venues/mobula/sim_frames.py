"""Frame builders for the Mobula Perp Events simulator (protocols.md §2.2-§2.3): the trades, liquidations,
TP/SL moves and cancels it pushes. Which subscriber gets a frame is ``sim_filters``' concern.

Every builder returns the ``data`` object of one push envelope, with the field names and
value types of §2.2/§2.3: amounts are 18-decimal raw integer strings, prices are JSON numbers,
``traderAddress`` (and Lighter's ``account``) are lowercase, ``date`` is ISO-8601 UTC with
milliseconds. Builders reject what the venue never emits (unknown ``type``, non-integer raw
amounts, malformed addresses), so a test that needs a broken frame must break it on purpose
(see ``MobulaPerpEventsSimulator.send_malformed``).

Shapes chosen where protocols.md is silent or marked [?] (keep in sync with the module docstring
of ``simulator.py``):
- Gains ``extra`` prices (``extra.trade.openPrice``; TRADE_STORED ``openPrice``/``tp``/``sl``) are
  integer strings in Gains' on-chain 1e10 precision: §2.2 shows ``openPrice`` as a string, which
  is how a uint64 struct field is serialised. ``extra`` leverage stays a plain number.
- ``takeProfitUSD``/``stopLossUSD`` default to 0, Gains' "not set".
- ``extra.open`` defaults to "a buy opens a long, a sell opens a short"; TP/SL always close.
- ``extra.trade.tradeType`` is Gains' enum: 0 market trade, 1 limit.
- TRADE_STORED carries no price/amount top-level fields: it is the "different field set" of §2.4.
- Lighter liquidations carry ``account, price, size`` (§2.3 multi-events example), ``size`` as a
  decimal string in base units, as Lighter's own API reports sizes (unlike Gains' 18-decimal
  ``baseAmountRaw``), plus the common ids, block and date.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "DEFAULT_BLOCK",
    "GAINS_CHAIN_ID",
    "GAINS_USDC",
    "LIGHTER_CHAIN_ID",
    "LIGHTER_POSITIONS_CHAIN_ID",
    "JsonDict",
    "gains_trade",
    "iso_ms",
    "leverage_update",
    "lighter_liquidation",
    "market_cancel",
    "position_size",
    "raw_amount",
    "tp_sl_update",
    "trade_stored",
]

JsonDict = dict[str, Any]

GAINS_CHAIN_ID: Final = "evm:42161"  # Arbitrum One, where gTrade runs
LIGHTER_CHAIN_ID: Final = "lighter:304"  # the id Lighter events carry on this stream
LIGHTER_POSITIONS_CHAIN_ID: Final = "lighter:301"  # the positions WSS id; matches nothing here
GAINS_USDC: Final = "0xaf88d065e77c8cc2239327c5edb3a432268e5831"  # native USDC on Arbitrum
GAINS_USDC_INDEX: Final = 3  # gTrade's collateralIndex of USDC (1 DAI, 2 WETH, 3 USDC)
DEFAULT_BLOCK: Final = 312_456_789  # plausible Arbitrum height, so adapters see real magnitudes

ORDER_EXECUTED_GAINS: Final = frozenset(
    {"MARKET_BUY", "MARKET_SELL", "LIMIT_BUY", "LIMIT_SELL", "TAKE_PROFIT", "STOP_LOSS"}
)
LIQUIDATIONS: Final = frozenset({"LIQUIDATION_LONG", "LIQUIDATION_SHORT"})
TP_SL_UPDATES: Final = frozenset({"UPDATE_TP", "UPDATE_SL"})
POSITION_SIZE: Final = frozenset({"POSITION_SIZE_INCREASE_EXECUTED", "POSITION_SIZE_DECREASE_EXECUTED"})
MARKET_CANCELS: Final = frozenset({"MARKET_OPEN_CANCELED", "MARKET_CLOSE_CANCELED"})

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_RAW_AMOUNT = re.compile(r"[0-9]+")
_WEI: Final = Decimal(10) ** 18
_GAINS_PRICE_SCALE: Final = Decimal(10) ** 10


# ---- value helpers -------------------------------------------------------------------


def raw_amount(amount: Decimal | int | str) -> str:
    """UI units to the 18-decimal raw integer string of the wire: ``raw_amount("1.5")`` -> ``"15" + 17 zeros``."""
    scaled = Decimal(amount) * _WEI
    if scaled != scaled.to_integral_value() or scaled < 0:
        raise ValueError(f"{amount!r} is not a non-negative amount with at most 18 decimals")
    return str(int(scaled))


def iso_ms(when: datetime) -> str:
    """The stream's ``date`` format: UTC, millisecond precision, ``Z`` suffix."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _date(date: str | datetime | None) -> str:
    if date is None:
        return iso_ms(datetime.now(UTC))
    return date if isinstance(date, str) else iso_ms(date)


def _address(value: str, what: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    return value.lower()  # the venue always sends lowercase (§2.4)


def _raw(value: str, what: str) -> str:
    if not isinstance(value, str) or not _RAW_AMOUNT.fullmatch(value):
        raise ValueError(f"{what} must be an 18-decimal raw integer string, got {value!r}")
    return value


def _decimal(value: str, what: str) -> str:
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise ValueError(f"{what} must be a decimal string, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{what} must be a positive decimal, got {value!r}")
    return value


def _type(type_: str, allowed: frozenset[str]) -> str:
    if type_ not in allowed:
        raise ValueError(f"type must be one of {sorted(allowed)}, got {type_!r}")
    return type_


def _gains_price(price: float) -> str:
    return str(int((Decimal(str(price)) * _GAINS_PRICE_SCALE).to_integral_value()))


def _head(type_: str, exchange: str, market: str, chain_id: str) -> JsonDict:
    return {"type": type_, "exchange": exchange, "market": market, "chainId": chain_id}


def _ids(trader: str, trade_id: str, tx_hash: str) -> JsonDict:
    return {"traderAddress": _address(trader, "trader"), "tradeId": trade_id, "transactionHash": tx_hash}


# ---- PerpOrderExecuted ---------------------------------------------------------------


def gains_trade(
    type_: str,
    trader: str,
    *,
    market: str = "gains-btc-usd-usdc",
    trade_id: str,
    tx_hash: str,
    base_amount_raw: str,
    price_usd: float,
    long: bool,
    leverage: int = 10,
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    price_quote: float | None = None,
    collateral_amount_raw: str | None = None,
    collateral_asset: str = GAINS_USDC,
    take_profit_usd: float = 0,
    stop_loss_usd: float = 0,
    open_: bool | None = None,
    amount_sent_to_trader: str = "0",
    index: int = 0,
    collateral_index: int = GAINS_USDC_INDEX,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """A Gains order execution (MARKET_*, LIMIT_*, TAKE_PROFIT, STOP_LOSS) in the §2.2 shape.

    ``collateral_amount_raw`` defaults to notional / leverage; ``open_`` defaults to
    "buy opens a long, sell opens a short", and TP/SL executions always close.
    """
    _type(type_, ORDER_EXECUTED_GAINS)
    if leverage <= 0:
        raise ValueError(f"leverage must be positive, got {leverage}")
    base = _raw(base_amount_raw, "base_amount_raw")
    if collateral_amount_raw is None:
        collateral = str(int(Decimal(base) * Decimal(str(price_usd)) / leverage))
    else:
        collateral = _raw(collateral_amount_raw, "collateral_amount_raw")
    if open_ is None:
        open_ = type_ not in ("TAKE_PROFIT", "STOP_LOSS") and type_.endswith("_BUY") == long
    return {
        **_head(type_, "gains", market, chain_id),
        **_ids(trader, trade_id, tx_hash),
        "priceQuote": price_usd if price_quote is None else price_quote,
        "priceUSD": price_usd,
        "blockNumber": block,
        "baseAmountRaw": base,
        "collateralAmountRaw": collateral,
        "collateralAsset": _address(collateral_asset, "collateral_asset"),
        "leverage": leverage,
        "takeProfitUSD": take_profit_usd,
        "stopLossUSD": stop_loss_usd,
        "date": _date(date),
        "extra": {
            "open": open_,
            "amountSentToTrader": _raw(amount_sent_to_trader, "amount_sent_to_trader"),
            "trade": {
                "long": long,
                "index": index,
                "tradeType": 1 if type_.startswith("LIMIT_") else 0,
                "openPrice": _gains_price(price_usd),
                "collateralIndex": collateral_index,
            },
        },
    }


def lighter_liquidation(
    type_: str,
    account: str,
    *,
    market: str = "lighter-eth-usd",
    size: str,
    price: float,
    tx_hash: str,
    trade_id: str,
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = LIGHTER_CHAIN_ID,
) -> JsonDict:
    """A Lighter LIQUIDATION_LONG/SHORT with Lighter's own field names ``account, price, size``."""
    _type(type_, LIQUIDATIONS)
    return {
        **_head(type_, "lighter", market, chain_id),
        "account": _address(account, "account"),
        "tradeId": trade_id,
        "transactionHash": tx_hash,
        "price": price,
        "size": _decimal(size, "size"),
        "blockNumber": block,
        "date": _date(date),
    }


# ---- PerpTpSlUpdate / PerpUncategorizedEvent -----------------------------------------


def trade_stored(
    trader: str,
    *,
    trade_id: str,
    tx_hash: str,
    long: bool,
    collateral: str,
    leverage: int,
    open_price: float,
    tp: float,
    sl: float,
    market: str = "gains-btc-usd-usdc",
    index: int = 0,
    trade_type: int = 0,
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """Gains' TRADE_STORED, sent beside the MARKET_* of the same tx: not a duplicate of it (§2.4)."""
    return {
        **_head("TRADE_STORED", "gains", market, chain_id),
        **_ids(trader, trade_id, tx_hash),
        "blockNumber": block,
        "date": _date(date),
        "extra": {
            "tradeType": trade_type,
            "leverage": leverage,
            "long": long,
            "collateralAmount": _raw(collateral, "collateral"),
            "index": index,
            "openPrice": _gains_price(open_price),
            "tp": _gains_price(tp),
            "sl": _gains_price(sl),
        },
    }


def tp_sl_update(
    type_: str,
    trader: str,
    *,
    trade_id: str,
    tx_hash: str,
    new_price_quote: float,
    quantity_percentage: float,
    market: str = "gains-btc-usd-usdc",
    exchange: str = "gains",
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """UPDATE_TP / UPDATE_SL with ``newPriceQuote`` and ``quantityPercentage``."""
    _type(type_, TP_SL_UPDATES)
    return {
        **_head(type_, exchange, market, chain_id),
        **_ids(trader, trade_id, tx_hash),
        "newPriceQuote": new_price_quote,
        "quantityPercentage": quantity_percentage,
        "blockNumber": block,
        "date": _date(date),
    }


def position_size(
    type_: str,
    trader: str,
    *,
    trade_id: str,
    tx_hash: str,
    base_amount_raw: str,
    price_usd: float | None = None,
    collateral_amount_raw: str | None = None,
    leverage: int | None = None,
    market: str = "gains-btc-usd-usdc",
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """POSITION_SIZE_INCREASE/DECREASE_EXECUTED; the optional fields appear only when given."""
    _type(type_, POSITION_SIZE)
    data: JsonDict = {**_head(type_, "gains", market, chain_id), **_ids(trader, trade_id, tx_hash)}
    if price_usd is not None:
        data["priceQuote"] = data["priceUSD"] = price_usd
    data["blockNumber"] = block
    data["baseAmountRaw"] = _raw(base_amount_raw, "base_amount_raw")
    if collateral_amount_raw is not None:
        data["collateralAmountRaw"] = _raw(collateral_amount_raw, "collateral_amount_raw")
    if leverage is not None:
        data["leverage"] = leverage
    data["date"] = _date(date)
    return data


def leverage_update(
    trader: str,
    *,
    trade_id: str,
    tx_hash: str,
    leverage: int,
    market: str = "gains-btc-usd-usdc",
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """LEVERAGE_UPDATE_EXECUTED (correct spelling; §2.3 notes an old ``LEVRAGE_`` typo in the docs)."""
    return {
        **_head("LEVERAGE_UPDATE_EXECUTED", "gains", market, chain_id),
        **_ids(trader, trade_id, tx_hash),
        "leverage": leverage,
        "blockNumber": block,
        "date": _date(date),
    }


def market_cancel(
    type_: str,
    trader: str,
    *,
    trade_id: str,
    tx_hash: str,
    cancel_reason: int,
    market: str = "gains-btc-usd-usdc",
    block: int = DEFAULT_BLOCK,
    date: str | datetime | None = None,
    chain_id: str = GAINS_CHAIN_ID,
) -> JsonDict:
    """MARKET_OPEN/CLOSE_CANCELED; ``extra.cancelReason`` is Gains' numeric CancelReason enum."""
    _type(type_, MARKET_CANCELS)
    if isinstance(cancel_reason, bool) or not isinstance(cancel_reason, int):
        raise ValueError(f"cancel_reason must be an int, got {cancel_reason!r}")
    return {
        **_head(type_, "gains", market, chain_id),
        **_ids(trader, trade_id, tx_hash),
        "blockNumber": block,
        "date": _date(date),
        "extra": {"cancelReason": cancel_reason},
    }
