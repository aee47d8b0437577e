"""What every write endpoint of the HTTP API shares: the bearer-token check and its 401 answer,
a bounded request body, and client values echoed safely in error messages."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from enum import Enum
from typing import TypeVar

import msgspec

from riskmon.asgi_server import Receive, Scope
from riskmon.config.types import Secret

Answer = tuple[int, object, list[tuple[bytes, bytes]]]


class AuthFailure(Enum):
    MISSING = "missing"
    INVALID = "invalid"


def authorize(headers: Iterable[tuple[bytes, bytes]], token: Secret | None) -> AuthFailure | None:
    """None when the request may write; otherwise why not. Compares in constant time."""
    if token is None:
        return None
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if not values:
        return AuthFailure.MISSING
    if len(values) > 1:
        return AuthFailure.INVALID
    scheme, _, credentials = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return AuthFailure.MISSING
    # Digests of both sides: equal lengths, so the comparison time says nothing of the token's length.
    expected = hashlib.sha256(token.reveal().encode()).digest()
    offered = hashlib.sha256(credentials.strip()).digest()
    return None if hmac.compare_digest(offered, expected) else AuthFailure.INVALID


_SHOWN_CHARS = 64  # characters of a client's value echoed in an error message, at most
_MAX_ERROR_CHARS = 300


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before sending its whole body: nothing was accepted, answer nothing."""


def refuse_unauthorized(scope: Scope, token: Secret | None, log: logging.Logger, what: str) -> Answer | None:
    """None when the request may write; otherwise the 401 answer (the token is never logged)."""
    failure = authorize(scope["headers"], token)
    if failure is None:
        return None
    log.info("%s: refused a %s from %s: %s bearer token", what, scope["method"], peer(scope), failure.value)
    challenge = b"Bearer" if failure is AuthFailure.MISSING else b'Bearer error="invalid_token"'
    message = "a bearer token is required" if failure is AuthFailure.MISSING else "the bearer token is wrong"
    return 401, {"error": message}, [(b"www-authenticate", challenge)]


async def read_request_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body; BodyTooLarge when it declares or turns out larger than `limit` bytes."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                if int(value) > limit:
                    raise BodyTooLarge
            except ValueError:
                pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def too_large(limit: int) -> Answer:
    return 413, {"error": f"body is larger than {limit} bytes"}, []


def peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def shown(value: str) -> str:
    """A client's value for an error message: quoted, escaped, bounded."""
    quoted = msgspec.json.encode(value[:_SHOWN_CHARS]).decode()
    return quoted if len(value) <= _SHOWN_CHARS else quoted[:-1] + '..."'


def bounded(message: str) -> str:
    return message if len(message) <= _MAX_ERROR_CHARS else message[: _MAX_ERROR_CHARS - 3] + "..."


_T = TypeVar("_T")


class BodyRejected(ValueError):
    """A request body that is not what the endpoint takes; the message is safe to answer with."""


def decode_body(decoder: msgspec.json.Decoder[_T], body: bytes, what: str) -> _T:
    """A write endpoint's JSON body, typed; BodyRejected naming what is wrong (`what`: "order"...)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BodyRejected(bounded(f"invalid {what}: {exc}")) from None
    except UnicodeDecodeError:
        raise BodyRejected("body is not valid UTF-8") from None
    except (msgspec.DecodeError, ValueError) as exc:
        raise BodyRejected(bounded(f"body is not valid JSON: {exc}")) from None
