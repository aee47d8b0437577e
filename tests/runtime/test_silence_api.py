"""The silences endpoint and the `riskmon silence` CLI, through a real uvicorn server on loopback.

The runtime's side (`SilenceApi`) is played by a small in-memory implementation backed by the pure
registry and a SilenceStore on a real SQLite file, on a virtual clock.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from riskmon.alerts.silences import Silence, Silences, SilenceState
from riskmon.asgi_server import AsgiServer
from riskmon.config.types import Secret
from riskmon.notify.webhook import rfc3339
from riskmon.runtime.silence_api import MAX_BODY_BYTES, SilenceEndpoint, parse_time
from riskmon.silence_cli import register
from riskmon.store.silences import SilenceStore

TOKEN = "s1lence-T0ken-that-must-never-leak"
AUTH = {"authorization": f"Bearer {TOKEN}"}
URL = "/api/v1/silences"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
BODY = {"matchers": ['venue="mango"'], "duration": "2h", "created_by": "ops", "comment": "venue maintenance"}


class ManualClock:
    """The runtime's clock, set by the tests."""

    def __init__(self, now: float = T0) -> None:
        self.now_value = now

    def now(self) -> float:
        return self.now_value

    def advance(self, seconds: float) -> None:
        self.now_value += seconds


class MemorySilenceApi:
    """The runtime's part: stamps `now` from its clock and persists every change."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.registry = Silences()
        self.store: SilenceStore | None = None

    def reset(self, store: SilenceStore) -> None:
        counter = itertools.count(1)
        self.registry = Silences(id_factory=lambda: f"sil-{next(counter)}")
        self.store = store
        self.clock.now_value = T0

    async def add(
        self, matchers: Sequence[str], *, starts_at: float | None, ends_at: float, created_by: str, comment: str
    ) -> Silence:
        silence = self.registry.add(
            matchers, starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment, now=self.clock.now()
        )
        assert self.store is not None
        self.store.save(silence)
        return silence

    async def expire(self, silence_id: str) -> Silence:
        silence = self.registry.expire(silence_id, self.clock.now())
        assert self.store is not None
        self.store.save(silence)
        return silence

    def get(self, silence_id: str) -> Silence | None:
        return self.registry.get(silence_id)

    def list(self, state: SilenceState | None) -> list[Silence]:
        return self.registry.list(self.clock.now(), state)


# One server for the module: starting and stopping uvicorn costs ~0.2 s.
ASYNC = pytest.mark.asyncio(loop_scope="module")
pytestmark = pytest.mark.integration
CLOCK = ManualClock()
API = MemorySilenceApi(CLOCK)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[MemorySilenceApi]:
    store = SilenceStore(tmp_path / "state.sqlite")
    API.reset(store)
    yield API
    store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[AsgiServer]:
    server = AsgiServer(SilenceEndpoint(API, Secret(TOKEN), clock=CLOCK), "127.0.0.1", 0)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(server: AsgiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
        yield c


@ASYNC
async def test_post_creates_and_persists_a_silence(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    response = await client.post(URL, json=BODY, headers=AUTH)
    assert response.status_code == 201
    assert response.json() == {
        "id": "sil-1",
        "matchers": ['venue="mango"'],
        "starts_at": "2023-11-14T22:13:20Z",
        "ends_at": "2023-11-15T00:13:20Z",
        "created_by": "ops",
        "comment": "venue maintenance",
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:13:20Z",
        "state": "active",
    }
    assert api.store is not None
    reopened = SilenceStore(api.store.path)
    assert [s.id for s in reopened.load()] == ["sil-1"]
    reopened.close()
    assert api.registry.silenced_by({"venue": "mango"}, T0 + 60) == ["sil-1"]


@ASYNC
@pytest.mark.parametrize(
    ("times", "starts", "ends", "state"),
    [
        ({"ends_at": "2023-11-14T23:13:20Z"}, T0, T0 + 3600, "active"),
        ({"ends_at": "2023-11-15T01:13:20.5+02:00"}, T0, T0 + 3600.5, "active"),
        ({"ends_at": T0 + 60}, T0, T0 + 60, "active"),
        ({"starts_at": "2023-11-14T22:23:20Z", "duration": "30m"}, T0 + 600, T0 + 2400, "pending"),
        ({"starts_at": T0 - 600, "duration": 90}, T0, T0 + 90, "active"),
    ],
)
async def test_post_times_in_rfc3339_unix_or_duration(
    client: httpx.AsyncClient, api: MemorySilenceApi, times: dict[str, object], starts: float, ends: float, state: str
) -> None:
    body = {k: v for k, v in BODY.items() if k != "duration"} | times
    response = await client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    assert (response.json()["starts_at"], response.json()["ends_at"]) == (rfc3339(starts), rfc3339(ends))
    assert response.json()["state"] == state
    silence = api.registry.get("sil-1")
    assert silence is not None
    assert (silence.starts_at, silence.ends_at) == (starts, ends)


@ASYNC
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"matchers": ["venue=~.*"]}, "at least one matcher must not match the empty string"),
        ({"matchers": ["venue=mango", "bad-name=x"]}, "matcher [1]: bad matcher format"),
        ({"matchers": "venue=mango"}, "invalid silence: Expected `array`, got `str` - at `$.matchers`"),
        ({"created_by": ""}, "created_by must be a non-empty string"),
        ({"comment": None}, "invalid silence: Object missing required field `comment`"),
        ({"ends_at": "2023-11-15T00:00:00Z"}, "give exactly one of ends_at and duration"),
        ({"duration": None}, "give exactly one of ends_at and duration"),
        ({"duration": "soon"}, "duration: expected a duration like"),
        ({"duration": "0s"}, "duration must be more than zero"),
        ({"duration": None, "ends_at": "2023-11-14T22:00:00Z"}, "ends_at must be in the future"),
        ({"duration": None, "ends_at": "2023-11-15 01:00:00"}, "ends_at must be RFC3339"),
        ({"duration": None, "ends_at": "tomorrow"}, "ends_at must be RFC3339"),
        ({"duration": None, "ends_at": (T0 + 60) * 1000}, "looks like milliseconds"),
        ({"starts_at": True}, "got `bool` - at `$.starts_at`"),
        ({"muted": True}, "invalid silence: Object contains unknown field `muted`"),
    ],
)
async def test_post_refusals_say_why(
    client: httpx.AsyncClient, api: MemorySilenceApi, change: dict[str, object], message: str
) -> None:
    body = {k: v for k, v in (BODY | change).items() if v is not None}
    response = await client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert len(api.registry) == 0


@ASYNC
async def test_post_that_is_not_json_is_refused(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    response = await client.post(URL, content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON")


@ASYNC
async def test_oversize_body_is_413(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    body = BODY | {"comment": "x" * MAX_BODY_BYTES}
    response = await client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 413
    assert response.json() == {"error": f"body is larger than {MAX_BODY_BYTES} bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit applies while reading
        for _ in range(5):
            yield b" " * (MAX_BODY_BYTES // 4)

    response = await client.post(URL, content=chunks(), headers=AUTH)
    assert response.status_code == 413
    assert len(api.registry) == 0


@ASYNC
@pytest.mark.parametrize(
    ("headers", "message", "challenge"),
    [
        ({}, "a bearer token is required", "Bearer"),
        ({"authorization": "Bearer wrong"}, "the bearer token is wrong", 'Bearer error="invalid_token"'),
        ({"authorization": f"Basic {TOKEN}"}, "a bearer token is required", "Bearer"),
    ],
)
async def test_writes_without_the_token_are_401(
    client: httpx.AsyncClient,
    api: MemorySilenceApi,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    message: str,
    challenge: str,
) -> None:
    created = await client.post(URL, json=BODY, headers=AUTH)
    with caplog.at_level(logging.DEBUG):
        post = await client.post(URL, json=BODY, headers=headers)
        delete = await client.delete(f"{URL}/{created.json()['id']}", headers=headers)
    for response in (post, delete):
        assert response.status_code == 401
        assert response.json() == {"error": message}
        assert response.headers["www-authenticate"] == challenge
        assert TOKEN not in response.text
    assert "bearer token" in caplog.text
    assert TOKEN not in caplog.text
    assert [s.state(CLOCK.now()) for s in api.registry.list(CLOCK.now())] == ["active"]


@ASYNC
async def test_get_lists_and_filters_by_state_without_a_token(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    await client.post(URL, json=BODY, headers=AUTH)
    await client.post(URL, json=BODY | {"starts_at": T0 + 600}, headers=AUTH)
    await client.delete(f"{URL}/sil-1", headers=AUTH)
    everything = await client.get(URL)
    assert everything.status_code == 200
    assert [(s["id"], s["state"]) for s in everything.json()] == [("sil-2", "pending"), ("sil-1", "expired")]
    pending = await client.get(URL, params={"state": "pending"})
    assert [s["id"] for s in pending.json()] == ["sil-2"]
    assert (await client.get(URL, params={"state": "active"})).json() == []
    bad = await client.get(URL, params={"state": "muted"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "state must be one of active, pending, expired"}
    one = await client.get(f"{URL}/sil-2")
    assert (one.status_code, one.json()["id"]) == (200, "sil-2")


@ASYNC
async def test_delete_expires_now_and_unknown_ids_are_404(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    await client.post(URL, json=BODY, headers=AUTH)
    CLOCK.advance(90)
    expired = await client.delete(f"{URL}/sil-1", headers=AUTH)
    assert expired.status_code == 200
    assert (expired.json()["ends_at"], expired.json()["state"]) == (rfc3339(T0 + 90), "expired")
    assert api.registry.silenced_by({"venue": "mango"}, CLOCK.now()) == []
    assert api.store is not None
    assert [s.ends_at for s in api.store.load()] == [T0 + 90]
    missing = await client.delete(f"{URL}/nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no silence with id 'nope'"}
    assert (await client.get(f"{URL}/nope")).status_code == 404
    assert (await client.get(f"{URL}/a/b")).status_code == 404


@ASYNC
async def test_other_methods_are_405(client: httpx.AsyncClient, api: MemorySilenceApi) -> None:
    listing = await client.put(URL, json=BODY, headers=AUTH)
    assert (listing.status_code, listing.headers["allow"]) == (405, "GET, HEAD, POST")
    one = await client.post(f"{URL}/sil-1", json=BODY, headers=AUTH)
    assert (one.status_code, one.headers["allow"]) == (405, "GET, HEAD, DELETE")


@pytest.mark.asyncio
async def test_without_a_configured_token_writes_are_open(tmp_path: Path) -> None:
    clock = ManualClock()
    api = MemorySilenceApi(clock)
    store = SilenceStore(tmp_path / "open.sqlite")
    api.reset(store)
    server = AsgiServer(SilenceEndpoint(api, None, clock=clock), "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as c:
            assert (await c.post(URL, json=BODY)).status_code == 201
            assert (await c.delete(f"{URL}/sil-1")).status_code == 200
    finally:
        await server.stop()
        store.close()


def test_parse_time_reads_rfc3339_and_unix_seconds() -> None:
    assert parse_time("t", "2023-11-14T22:13:20Z") == T0
    assert parse_time("t", "2023-11-14t22:13:20.123456789z") == T0 + 0.123456
    assert parse_time("t", "2023-11-14T23:13:20+01:00") == T0
    assert parse_time("t", T0) == T0


def test_an_empty_token_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        SilenceEndpoint(API, Secret(""))


# The CLI, run in a worker thread: it is synchronous and the server shares this event loop.


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="riskmon")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


async def run_cli(server: AsgiServer, *argv: str) -> int:
    return await asyncio.wait_for(
        asyncio.to_thread(cli, "silence", "--url", f"http://127.0.0.1:{server.port}", *argv), timeout=5
    )


@ASYNC
async def test_cli_add_list_expire(
    server: AsgiServer, api: MemorySilenceApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKMON_API_TOKEN", TOKEN)
    monkeypatch.setenv("USER", "alice")
    code = await run_cli(server, "add", 'venue="mango"', "-m", "desk=~macro|rates", "-d", "2h", "-c", "fork drill")
    assert (code, capsys.readouterr().out) == (0, "sil-1\n")
    end = rfc3339(T0 + 600)
    code = await run_cli(server, "add", "--matcher", "venue=phoenix", "--end", end, "-c", "x" * 50, "-a", "bob")
    assert (code, capsys.readouterr().out) == (0, "sil-2\n")
    silence = api.registry.get("sil-1")
    assert silence is not None
    assert silence.matchers == ('venue="mango"', 'desk=~"macro|rates"')
    assert (silence.ends_at, silence.created_by, silence.comment) == (T0 + 7200, "alice", "fork drill")

    assert await run_cli(server, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "MATCHERS", "ENDS", "STATE", "CREATED", "BY", "COMMENT"]
    assert lines[1].split() == ["sil-2", 'venue="phoenix"', end, "active", "bob", "x" * 37 + "..."]
    ends = rfc3339(T0 + 7200)
    assert lines[2].split() == [
        "sil-1",
        'venue="mango"',
        'desk=~"macro|rates"',
        ends,
        "active",
        "alice",
        "fork",
        "drill",
    ]

    assert await run_cli(server, "expire", "sil-1", "nope") == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("sil-1\n", "error: nope: no silence with id 'nope'\n")

    assert await run_cli(server, "list", "--state", "expired", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["state"]) for s in listed] == [("sil-1", "expired")]


@ASYNC
async def test_cli_reports_refusals_with_exit_1_and_never_prints_the_token(
    server: AsgiServer, api: MemorySilenceApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TOKEN", "wrong-" + TOKEN)
    code = await run_cli(server, "--token-env", "MY_TOKEN", "add", "venue=mango", "-c", "c", "-a", "a")
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == "error: the bearer token is wrong (the token is read from $MY_TOKEN)\n"
    monkeypatch.setenv("RISKMON_API_TOKEN", TOKEN)
    assert await run_cli(server, "add", "venue=~.*", "-c", "c", "-a", "a") == 1
    assert "at least one matcher must not match the empty string" in capsys.readouterr().err
    assert len(api.registry) == 0


@ASYNC
async def test_cli_usage_errors_exit_2(
    server: AsgiServer, api: MemorySilenceApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await run_cli(server, "add", "-c", "why", "-a", "a") == 2
    assert capsys.readouterr().err == "error: silence add: give at least one matcher\n"
    monkeypatch.delenv("USER", raising=False)
    assert await run_cli(server, "add", "venue=mango", "-c", "why") == 2
    assert "--author is required" in capsys.readouterr().err
    for argv in (("add", "venue=mango", "-c", "c", "-d", "soon"), ("add", "venue=mango", "-d", "1h", "--end", "x")):
        with pytest.raises(SystemExit) as exit_:
            cli("silence", *argv)
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument -d/--duration: expected a duration like" in err
    assert "argument --end: not allowed with argument -d/--duration" in err
    assert cli("silence", "--url", "ftp://127.0.0.1:1", "list") == 2
    assert len(api.registry) == 0


def test_cli_exit_3_when_the_server_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert cli("silence", "--url", f"http://127.0.0.1:{port}/some/path?key=hidden", "list") == 3
    err = capsys.readouterr().err
    assert err == f"error: cannot reach riskmon at 127.0.0.1:{port}: ConnectError\n"
