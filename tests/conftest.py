from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def mango_real() -> dict[str, Any]:
    """Real Mango v3 frames from Mango's documentation (a copy of shared/data/mango_v3_fills_real.json)."""
    loaded: dict[str, Any] = json.loads((DATA / "mango_v3_fills_real.json").read_text())
    return loaded
