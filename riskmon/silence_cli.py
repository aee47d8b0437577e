"""`riskmon silence add|list|expire`: manage the silences of a running riskmon over HTTP, like amtool.

The bearer token comes from an environment variable (`--token-env`, default RISKMON_API_TOKEN), never
from the command line, so it lands in neither shell history nor `ps`. Exit codes: 0 done, 1 refused by
the server (its message is printed), 2 usage, 3 the server cannot be reached (the message names
host:port only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from riskmon.config.types import Duration
from riskmon.runtime.silence_api import SILENCES_PATH

DEFAULT_URL = "http://127.0.0.1:9860"
DEFAULT_TOKEN_ENV = "RISKMON_API_TOKEN"  # noqa: S105 - the name of a variable, not a token
TIMEOUT = 10.0
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_COMMENT_COLUMN = 40


class _Unreachable(Exception):
    pass


class _Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `silence` and its subcommands; each sets `func(args) -> exit code`."""
    silence = subparsers.add_parser("silence", help="add, list or expire silences on a running riskmon")
    silence.add_argument("--url", default=DEFAULT_URL, help=f"riskmon's HTTP API (default {DEFAULT_URL})")
    silence.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        metavar="NAME",
        help=f"environment variable holding the bearer token (default {DEFAULT_TOKEN_ENV})",
    )
    commands = silence.add_subparsers(dest="silence_command", required=True)

    add = commands.add_parser("add", help="mute the alerts matching every matcher; prints the new id")
    add.add_argument("matchers", nargs="*", metavar="MATCHER", help='e.g. venue="mango" desk=~"macro|rates"')
    add.add_argument("-m", "--matcher", action="append", default=[], dest="extra_matchers", metavar="MATCHER")
    until = add.add_mutually_exclusive_group()
    until.add_argument("-d", "--duration", type=_duration, help="how long from the start (default 1h)")
    until.add_argument("--end", metavar="RFC3339", help="when the silence ends")
    add.add_argument("--start", metavar="RFC3339", help="when the silence starts (default now)")
    add.add_argument("-c", "--comment", required=True, help="why (shown to everyone who sees the silence)")
    add.add_argument("-a", "--author", default=os.environ.get("USER"), help="who (default $USER)")
    add.set_defaults(func=cmd_add)

    show = commands.add_parser("list", help="list silences")
    show.add_argument("--state", choices=["active", "pending", "expired"], help="only silences in this state")
    show.add_argument("--json", action="store_true", help="print the server's JSON list")
    show.set_defaults(func=cmd_list)

    expire = commands.add_parser("expire", help="end silences now")
    expire.add_argument("ids", nargs="+", metavar="ID")
    expire.set_defaults(func=cmd_expire)


def _duration(text: str) -> str:
    try:
        seconds = Duration.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be more than zero")
    return text


def cmd_add(args: argparse.Namespace) -> int:
    matchers = [*args.matchers, *args.extra_matchers]
    if not matchers:
        return _usage("silence add: give at least one matcher")
    if not args.author:
        return _usage("silence add: --author is required when $USER is not set")
    body: dict[str, Any] = {"matchers": matchers, "created_by": args.author, "comment": args.comment}
    if args.start:
        body["starts_at"] = args.start
    if args.end:
        body["ends_at"] = args.end
    else:
        body["duration"] = args.duration or "1h"
    return _run(args, lambda client: _add(client, body))


def _add(client: httpx.Client, body: dict[str, Any]) -> int:
    silence = _call(client, "POST", SILENCES_PATH, json=body)
    print(silence["id"])
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    return _run(args, lambda client: _list(client, args.state, as_json=args.json))


def _list(client: httpx.Client, state: str | None, *, as_json: bool) -> int:
    silences = _call(client, "GET", SILENCES_PATH, params={"state": state} if state else None)
    if as_json:
        print(json.dumps(silences, indent=2))
        return EXIT_OK
    rows = [("ID", "MATCHERS", "ENDS", "STATE", "CREATED BY", "COMMENT")]
    for s in silences:
        comment = " ".join(s["comment"].split())
        if len(comment) > _COMMENT_COLUMN:
            comment = comment[: _COMMENT_COLUMN - 3] + "..."
        rows.append((s["id"], " ".join(s["matchers"]), s["ends_at"], s["state"], s["created_by"], comment))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def cmd_expire(args: argparse.Namespace) -> int:
    return _run(args, lambda client: _expire(client, args.ids))


def _expire(client: httpx.Client, ids: list[str]) -> int:
    code = EXIT_OK
    for silence_id in ids:
        try:
            _call(client, "DELETE", f"{SILENCES_PATH}/{quote(silence_id, safe='')}")
        except _Refused as exc:
            print(f"error: {silence_id}: {exc}", file=sys.stderr)
            code = EXIT_REFUSED
            continue
        print(silence_id)
    return code


def _run(args: argparse.Namespace, action: Callable[[httpx.Client], int]) -> int:
    try:
        parts = urlsplit(args.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return _usage(f"silence: --url {args.url!r} is not a URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _usage("silence: --url must be http://host:port or https://host:port")
    where = f"{parts.hostname}:{port}"
    token = os.environ.get(args.token_env, "")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    # httpx logs every request, URL included, at INFO: riskmon's default level. Not for a CLI's stderr.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT) as client:
            return action(client)
    except _Refused as exc:
        hint = f" (the token is read from ${args.token_env})" if exc.status == 401 else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return EXIT_REFUSED
    except _Unreachable as exc:
        print(f"error: cannot reach riskmon at {where}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        raise _Unreachable("timed out") from None
    except httpx.TransportError as exc:
        # The exception's text can carry the full URL; say what kind of failure it was, not where.
        raise _Unreachable(type(exc).__name__) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and payload is not None:
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        raise _Refused(payload["error"], response.status_code)
    raise _Refused(f"the server answered {response.status_code}", response.status_code)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE
