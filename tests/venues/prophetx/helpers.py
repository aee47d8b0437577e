"""What the ProphetX session test modules share: the desk's credentials, how a leak of them is
recognised, the session under test, and leaving the module's simulator clean after a test."""

from __future__ import annotations

import random
import re

from riskmon.config.schema import ProphetXVenue
from riskmon.venues.prophetx.codec import ProphetXCodec
from riskmon.venues.prophetx.session import ProphetXSession
from riskmon.venues.prophetx.simulator import ProphetXSimulator
from riskmon.venues.stream_session import Sleep
from tests.venues.session_harness import TIMEOUT, SessionHarness

VENUE = "prophetx"
DESK = "bets"
ACCOUNT = "acct-1"
ACCESS_KEY = "AKpxAccessKey0123456789"
SECRET_KEY = "SKpxSecretKey9876543210"
APP_SECRET = "pusher-app-secret-xyz"
SIM_NOW = 1_784_813_000.0  # the simulator's (fixed) clock: exact venue timestamps
# What gives a credential away: every JWT the venue issues starts with this header, and every
# Pusher signature (channel or signin) is 64 hex digits after the app key.
JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
SIGNATURE = re.compile(r"[0-9a-f]{64}")


def leaks(text: str) -> list[str]:
    found = [word for word in (ACCESS_KEY, SECRET_KEY, APP_SECRET, JWT_HEADER, "Bearer") if word in text]
    return found + SIGNATURE.findall(text)


def desk_session(h: SessionHarness, config: ProphetXVenue, *, seed: int, heartbeat_sleep: Sleep) -> ProphetXSession:
    """The desk's session delivering into `h`, on its clock and backoff sleep, with seeded jitter."""
    codec = ProphetXCodec(VENUE, {ACCOUNT: DESK}, DESK)
    return ProphetXSession(
        VENUE, config, codec, h.sink, h.clock, rng=random.Random(seed), sleep=h.sleep, heartbeat_sleep=heartbeat_sleep
    )


async def sockets_gone(sim: ProphetXSimulator) -> None:
    """Heal REST faults, and wait until the simulator's side of the test's sockets has closed
    (the simulator outlives the test)."""
    sim.heal_rest()
    await sim._hub.waiters.wait_for(lambda: sim.connection_count == 0, TIMEOUT)
