"""The Phoenix wire examples more than one test module feeds the codec (protocols.md §5)."""

from __future__ import annotations

AUTHORITY = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"  # the desk's wallet
OTHER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"  # someone else's

# What the codec sends to subscribe (and unsubscribe) the desk's trader and the exchange channel.
SUBSCRIBE_TRADER = (
    b'{"type":"subscribe","subscription":{"channel":"traderState","authority":"' + AUTHORITY.encode() + b'",'
    b'"traderPdaIndex":0}}'
)
UNSUBSCRIBE_TRADER = SUBSCRIBE_TRADER.replace(b'"type":"subscribe"', b'"type":"unsubscribe"')
SUBSCRIBE_EXCHANGE = b'{"type":"subscribe","subscription":{"channel":"exchange","encoding":"json"}}'
UNSUBSCRIBE_EXCHANGE = b'{"type":"unsubscribe","subscription":{"channel":"exchange","encoding":"json"}}'
