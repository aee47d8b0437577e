"""Tests for monitor.yaml loading: riskmon/config/loader.py, venue_checks.py, schema.py, types.py
and `riskmon check`."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from riskmon.cli import main
from riskmon.config import ConfigError, ConfigIssue, MonitorConfig, load_config, parse_config
from riskmon.config.loader import format_path
from riskmon.config.schema import (
    ConsoleReceiver,
    MangoV3FillsVenue,
    MobulaPerpEventsVenue,
    PhoenixVenue,
    ProphetXVenue,
    TotalisRfqVenue,
)
from riskmon.config.types import Duration, Secret
from tests.config.minimal_config import ACCOUNT_A, MINIMAL

REPO = Path(__file__).resolve().parents[2]
FILE = "monitor.yaml"
ACCOUNT_B = "FSDQFx8F1a29b2CNMXGf3HxyLxxrPg1VY2o477kBvSuu"
ACCOUNT_C = "8w5hAPpu1XvsC2K84zgUELWfiqnTa8LQwDVvmBAQVMNg"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Every secret value is distinctive, so a leak anywhere in an error is unmistakable.
SECRETS = {
    "RISKMON_TOKEN": "tok-9f3a1c77e2",
    "MOBULA_API_KEY": "mob-51d0c4b8aa",
    "PX_ACCESS_KEY": "pxa-77be02c4d1",
    "PX_SECRET_KEY": "pxs-0c9e41aa53",
    "TOTALIS_API_KEY": "tot-e8a2f7710b",
    "PHOENIX_JWT": "jwt-3b6c0d9e12",
}

VALID = textwrap.dedent(
    f"""\
    server:
      host: 127.0.0.1
      port: 9861
      token: ${{RISKMON_TOKEN}}
    state:
      path: /var/lib/riskmon/state.db
      fill_retention: 5000
    alerts:
      event_resolve_after: 2m
    venues:
      mango:
        kind: mango_v3_fills
        urls:
          - ws://127.0.0.1:8790/
          - wss://mango-fills.example.net/v3
        markets:
          XYZ-PERP:
            base_lot_size: 100
            quote_lot_size: 10
            base_decimals: 6
        reconnect:
          initial: 250ms
          max: 1m
        max_frame_bytes: 65536
        open_timeout: 5s
      mobula:
        kind: mobula_perp_events
        api_key: ${{MOBULA_API_KEY}}
        chain_ids: ["evm:42161"]
        ping_interval: 15s
      prophetx:
        kind: prophetx
        rest_url: https://api.prophetx.example
        access_key: ${{PX_ACCESS_KEY}}
        secret_key: ${{PX_SECRET_KEY}}
        activation_timeout: 10s
        health_check_gap: 30s
        reconcile_interval: 15m
      totalis:
        kind: totalis_rfq
        api_key: ${{TOTALIS_API_KEY}}
        rfq_ids: [rfq-1, rfq-2]
      phoenix:
        kind: phoenix
        authority: {ACCOUNT_C}
        trader_pda_index: 3
        symbols: [SOL, BTC]
        jwt: ${{PHOENIX_JWT}}
        reconnect:
          initial: 1
          max: 1h
    desks:
      sol-desk:
        accounts:
          mango: [{ACCOUNT_A}]
          mobula: ["0xAbCdEf0000000000000000000000000000000001"]
          prophetx: ["px-acct-1"]
        limits:
          max_net_notional_usd:
            - market: SOL-PERP
              max_usd: 25000
            - market: "*-PERP"
              max_usd: 10000.50
          max_gross_notional_usd: 60000
          warn_at: 0.75
          clear_at: 0.9
          for: 30s
      mm-desk:
        accounts:
          mango: [{ACCOUNT_B}]
          totalis: [mm-7]
    receivers:
      console:
        kind: console
    """
)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the `occurrence`-th line containing `needle`."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not found {occurrence} times"
    return hits[occurrence - 1]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def add_after(text: str, anchor: str, *extra: str) -> str:
    """Insert `extra` lines after the one line containing `anchor`, at that line's indentation."""
    lines = text.splitlines(keepends=True)
    hits = [index for index, line in enumerate(lines) if anchor in line]
    assert len(hits) == 1, f"{anchor!r} must be on exactly one line"
    line = lines[hits[0]]
    indent = line[: len(line) - len(line.lstrip())]
    lines[hits[0] + 1 : hits[0] + 1] = [f"{indent}{added}\n" for added in extra]
    return "".join(lines)


def drop_line(text: str, anchor: str) -> str:
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if anchor not in line]
    assert len(kept) == len(lines) - 1, f"{anchor!r} must be on exactly one line"
    return "".join(kept)


def issues_of(text: str, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, FILE, SECRETS if environ is None else environ)
    assert raised.value.issues, "a ConfigError must carry at least one issue"
    return raised.value.issues


def only_issue(text: str, environ: Mapping[str, str] | None = None) -> ConfigIssue:
    issues = issues_of(text, environ)
    assert len(issues) == 1, [str(issue) for issue in issues]
    return issues[0]


def assert_no_secret(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"the value of {name} leaked: {text}"


# ---- a valid config -----------------------------------------------------------------------


def test_valid_config_with_all_five_venue_kinds() -> None:
    config = parse_config(VALID, FILE, SECRETS)
    assert isinstance(config, MonitorConfig)
    assert list(config.venues) == ["mango", "mobula", "prophetx", "totalis", "phoenix"]

    mango = config.venues["mango"]
    assert isinstance(mango, MangoV3FillsVenue)
    assert mango.urls == ["ws://127.0.0.1:8790/", "wss://mango-fills.example.net/v3"]
    lots = mango.markets["XYZ-PERP"]
    assert (lots.base_lot_size, lots.quote_lot_size, lots.base_decimals, lots.quote_decimals) == (100, 10, 6, 6)
    assert (mango.reconnect.initial, mango.reconnect.max) == (0.25, 60.0)
    assert isinstance(mango.reconnect.initial, Duration)
    assert (mango.max_frame_bytes, mango.open_timeout) == (65536, 5.0)

    mobula = config.venues["mobula"]
    assert isinstance(mobula, MobulaPerpEventsVenue)
    assert mobula.api_key.reveal() == SECRETS["MOBULA_API_KEY"]
    assert mobula.chain_ids == ["evm:42161"]
    assert mobula.ping_interval == 15.0
    assert mobula.url == "wss://stream-perps-prod-eu.mobula.io/"  # default kept

    prophetx = config.venues["prophetx"]
    assert isinstance(prophetx, ProphetXVenue)
    assert prophetx.access_key.reveal() == SECRETS["PX_ACCESS_KEY"]
    assert prophetx.secret_key.reveal() == SECRETS["PX_SECRET_KEY"]
    assert (prophetx.activation_timeout, prophetx.health_check_gap, prophetx.reconcile_interval) == (10.0, 30.0, 900.0)

    totalis = config.venues["totalis"]
    assert isinstance(totalis, TotalisRfqVenue)
    assert totalis.api_key.reveal() == SECRETS["TOTALIS_API_KEY"]
    assert totalis.rfq_ids == ["rfq-1", "rfq-2"]

    phoenix = config.venues["phoenix"]
    assert isinstance(phoenix, PhoenixVenue)
    assert (phoenix.authority, phoenix.trader_pda_index, phoenix.symbols) == (ACCOUNT_C, 3, ["SOL", "BTC"])
    assert phoenix.jwt is not None
    assert phoenix.jwt.reveal() == SECRETS["PHOENIX_JWT"]
    assert (phoenix.reconnect.initial, phoenix.reconnect.max) == (1.0, 3600.0)

    sol = config.desks["sol-desk"]
    assert sol.accounts["mango"] == [ACCOUNT_A]
    assert sol.accounts["prophetx"] == ["px-acct-1"]
    limits = sol.limits
    assert [(lim.market, lim.max_usd) for lim in limits.max_net_notional_usd] == [
        ("SOL-PERP", Decimal("25000")),
        ("*-PERP", Decimal("10000.50")),
    ]
    assert limits.max_gross_notional_usd == Decimal("60000")
    assert (limits.warn_at, limits.clear_at, limits.pending_for) == (Decimal("0.75"), Decimal("0.9"), 30.0)
    mm = config.desks["mm-desk"]
    assert mm.accounts == {"mango": [ACCOUNT_B], "totalis": ["mm-7"]}
    # Defaults apply where a desk says nothing about limits.
    assert (mm.limits.max_net_notional_usd, mm.limits.warn_at, mm.limits.pending_for) == ([], Decimal("0.8"), 0.0)

    assert (config.server.host, config.server.port) == ("127.0.0.1", 9861)
    assert config.server.token == Secret(SECRETS["RISKMON_TOKEN"])
    assert (config.state.path, config.state.fill_retention) == ("/var/lib/riskmon/state.db", 5000)
    assert config.alerts.event_resolve_after == 120.0
    assert config.receivers == {"console": ConsoleReceiver()}


def test_defaults_for_optional_sections() -> None:
    config = parse_config(MINIMAL, FILE, {})
    assert (config.server.host, config.server.port, config.server.token) == ("127.0.0.1", 9860, None)
    assert (config.state.path, config.state.fill_retention) == ("riskmon.db", 200_000)
    assert config.alerts.event_resolve_after == 300.0
    assert list(config.receivers) == ["console"]
    mango = config.venues["mango"]
    assert isinstance(mango, MangoV3FillsVenue)
    assert (mango.reconnect.initial, mango.reconnect.max, mango.open_timeout) == (0.5, 30.0, 10.0)
    assert mango.max_frame_bytes == 4 * 1024 * 1024


# ---- ${ENV_VAR} interpolation -------------------------------------------------------------


def test_env_vars_are_interpolated_from_the_environ_argument() -> None:
    text = (
        MINIMAL.replace(
            "urls: [ws://127.0.0.1:8790]",
            'urls: ["ws://${MANGO_HOST}:${MANGO_PORT}/feed?key=${MANGO_KEY}"]',
        )
        + "server:\n  token: ${RISKMON_TOKEN}\n  host: ${BIND}\n"
    )
    env = {
        "MANGO_HOST": "10.1.2.3",
        "MANGO_PORT": "8791",
        "MANGO_KEY": "k#1: [x]",  # YAML syntax in a value is data, never parsed again
        "RISKMON_TOKEN": "t0k: {not yaml}",
        "BIND": "0.0.0.0",
    }
    config = parse_config(text, FILE, env)
    mango = config.venues["mango"]
    assert isinstance(mango, MangoV3FillsVenue)
    assert mango.urls == ["ws://10.1.2.3:8791/feed?key=k#1: [x]"]
    assert config.server.token is not None
    assert config.server.token.reveal() == "t0k: {not yaml}"
    assert config.server.host == "0.0.0.0"


def test_load_config_uses_the_environ_mapping_not_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(MINIMAL + "server:\n  token: ${RISKMON_TOKEN}\n", encoding="utf-8")
    monkeypatch.setenv("RISKMON_TOKEN", "from-process-env")
    config = load_config(path, environ={"RISKMON_TOKEN": "from-mapping"})
    assert config.server.token == Secret("from-mapping")
    # Without a mapping the process environment applies.
    assert load_config(path).server.token == Secret("from-process-env")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert [issue.path for issue in raised.value.issues] == [("server", "token")]


def test_missing_env_var_names_variable_key_path_and_line_and_no_other_secret() -> None:
    env = {name: value for name, value in SECRETS.items() if name != "PX_SECRET_KEY"}
    issue = only_issue(VALID, env)
    assert issue.file == FILE
    assert issue.line == line_of(VALID, "secret_key: ${PX_SECRET_KEY}")
    assert issue.path == ("venues", "prophetx", "secret_key")
    assert "PX_SECRET_KEY" in issue.message
    assert "not set" in issue.message
    assert str(issue) == f"{FILE}:{issue.line}: venues.prophetx.secret_key: {issue.message}"
    with pytest.raises(ConfigError) as raised:
        parse_config(VALID, FILE, env)
    assert_no_secret(str(raised.value))
    assert_no_secret(repr(raised.value.issues))


def test_missing_env_var_inside_a_list_names_the_index() -> None:
    text = replace_once(
        MINIMAL, "urls: [ws://127.0.0.1:8790]", "urls:\n      - ws://127.0.0.1:1\n      - ws://${BACKUP_HOST}:8790"
    )
    issue = only_issue(text, {})
    assert issue.path == ("venues", "mango", "urls", 1)
    assert issue.line == line_of(text, "${BACKUP_HOST}")
    assert "BACKUP_HOST" in issue.message
    assert "venues.mango.urls[1]" in str(issue)


def test_every_missing_env_var_is_reported() -> None:
    issues = issues_of(VALID, {})
    assert sorted(issue.path for issue in issues) == sorted(
        [
            ("server", "token"),
            ("venues", "mobula", "api_key"),
            ("venues", "prophetx", "access_key"),
            ("venues", "prophetx", "secret_key"),
            ("venues", "totalis", "api_key"),
            ("venues", "phoenix", "jwt"),
        ]
    )
    for issue in issues:
        assert any(name in issue.message for name in SECRETS)


# ---- type errors, unknown and missing keys --------------------------------------------------


def test_wrong_type_gives_file_line_and_key_path() -> None:
    text = VALID.replace("port: 9861", "port: high")
    issue = only_issue(text)
    assert (issue.file, issue.line, issue.path) == (FILE, line_of(text, "port: high"), ("server", "port"))
    assert "expected `int`" in issue.message
    assert str(issue).startswith(f"{FILE}:{issue.line}: server.port: ")


def test_wrong_type_inside_a_dict_names_the_hidden_key() -> None:
    # msgspec reports `$.markets[...].base_lot_size`; the loader must find which market it is.
    text = add_after(VALID, "markets:", "  ABC-PERP: {base_lot_size: 1, quote_lot_size: 1, base_decimals: 6}")
    text = replace_once(text, "base_lot_size: 100", "base_lot_size: lots")
    issue = only_issue(text)
    assert issue.path == ("venues", "mango", "markets", "XYZ-PERP", "base_lot_size")
    assert issue.line == line_of(text, "base_lot_size: lots")
    assert "expected `int`" in issue.message
    assert f"{FILE}:{issue.line}: venues.mango.markets.XYZ-PERP.base_lot_size: " in str(issue)


def test_wrong_type_in_a_list_inside_a_dict() -> None:
    text = MINIMAL.replace(f"mango: [{ACCOUNT_A}]", "mango:\n          - 12345")
    issue = only_issue(text)
    assert issue.path == ("desks", "desk-a", "accounts", "mango", 0)
    assert issue.line == line_of(text, "- 12345")
    assert "expected `str`" in issue.message


def test_one_run_reports_every_broken_venue_and_desk() -> None:
    text = (
        VALID.replace("trader_pda_index: 3", "trader_pda_index: three")
        .replace("rfq_ids: [rfq-1, rfq-2]", "rfq_ids: rfq-1")
        .replace("max_gross_notional_usd: 60000", "max_gross_notional_usd: [1]")
    )
    issues = issues_of(text)
    assert [(issue.path, issue.line) for issue in issues] == [
        (("venues", "totalis", "rfq_ids"), line_of(text, "rfq_ids: rfq-1")),
        (("venues", "phoenix", "trader_pda_index"), line_of(text, "trader_pda_index: three")),
        (("desks", "sol-desk", "limits", "max_gross_notional_usd"), line_of(text, "max_gross_notional_usd")),
    ]


def test_unknown_section_names_it_and_lists_sections() -> None:
    text = MINIMAL + "alertz:\n  event_resolve_after: 1m\n"
    issue = only_issue(text)
    assert (issue.path, issue.line) == (("alertz",), line_of(text, "alertz:"))
    assert "unknown section" in issue.message
    for section in ("alerts", "desks", "receivers", "server", "state", "venues"):
        assert section in issue.message


@pytest.mark.parametrize(
    ("anchor", "new", "path", "expected"),
    [
        (
            "trader_pda_index: 3",
            None,
            ("venues", "phoenix", "trader_pda_idx"),
            "authority, feed_down_grace, jwt, markets, max_frame_bytes, open_timeout, ping_interval, ping_timeout, "
            "reconnect, symbols, trader_pda_index, url",
        ),
        (
            "warn_at: 0.75",
            None,
            ("desks", "sol-desk", "limits", "warn_att"),
            "clear_at, for, max_gross_notional_usd, max_net_notional_usd, max_pending_rfq_usd, "
            "max_worst_case_loss_usd, warn_at",
        ),
        (
            "base_decimals: 6",
            "tick_size: 1",
            ("venues", "mango", "markets", "XYZ-PERP", "tick_size"),
            "base_decimals, base_lot_size, quote_decimals, quote_lot_size",
        ),
        (
            "max_usd: 10000.50",
            "min_usd: 1",
            ("desks", "sol-desk", "limits", "max_net_notional_usd", 1, "min_usd"),
            "market, max_usd",
        ),
        ("port: 9861", "bind: 0.0.0.0", ("server", "bind"), "host, metrics, port, token"),
    ],
)
def test_unknown_key_is_named_with_the_expected_keys(
    anchor: str, new: str | None, path: tuple[str | int, ...], expected: str
) -> None:
    key = str(path[-1])
    if new is None:  # a misspelt key
        text = replace_once(VALID, anchor, anchor.replace(anchor.split(":")[0], key))
        new = anchor.replace(anchor.split(":")[0], key)
    else:  # an extra key
        text = add_after(VALID, anchor, new)
    issue = only_issue(text)
    assert issue.path == path
    assert issue.line == line_of(text, new)
    assert issue.message == f"unknown key; expected one of {expected}"
    assert f"{FILE}:{issue.line}: {format_path(path)}: unknown key" == str(issue).split(";")[0]


def test_unknown_venue_kind() -> None:
    text = MINIMAL.replace("kind: mango_v3_fills", "kind: binance")
    issue = only_issue(text)
    assert (issue.path, issue.line) == (("venues", "mango", "kind"), line_of(text, "kind: binance"))
    assert "binance" in issue.message


def test_missing_required_section() -> None:
    text = MINIMAL.split("desks:")[0]
    issue = only_issue(text)
    assert issue.path == ("desks",)
    assert "required section is missing" in issue.message
    assert issue.line == 1


def test_empty_section_is_an_error() -> None:
    text = "venues: {}\n" + MINIMAL.split("\n", 4)[4]
    assert text.startswith("venues: {}\ndesks:")
    issues = issues_of(text)
    assert (("venues",), 1) in [(issue.path, issue.line) for issue in issues]
    assert any("at least one entry" in issue.message for issue in issues)


@pytest.mark.parametrize(
    ("old", "new", "path", "key", "line_needle"),
    [
        ("    urls: [ws://127.0.0.1:8790]\n", "", ("venues", "mango"), "urls", "  mango:"),
        (
            f"    accounts:\n      mango: [{ACCOUNT_A}]\n",
            "    limits: {}\n",
            ("desks", "desk-a"),
            "accounts",
            "desk-a:",
        ),
    ],
)
def test_missing_required_key(old: str, new: str, path: tuple[str, ...], key: str, line_needle: str) -> None:
    assert old in MINIMAL
    text = MINIMAL.replace(old, new)
    issue = only_issue(text)
    assert issue.path == path
    assert issue.message == f"missing required key `{key}`"
    assert issue.line == line_of(text, line_needle)


def test_missing_required_key_in_a_dict_entry() -> None:
    text = drop_line(VALID, "base_decimals: 6")
    issue = only_issue(text)
    assert issue.path == ("venues", "mango", "markets", "XYZ-PERP")
    assert issue.message == "missing required key `base_decimals`"
    assert issue.line == line_of(text, "XYZ-PERP:")


def test_missing_secret_key_of_a_venue() -> None:
    text = drop_line(VALID, "api_key: ${TOTALIS_API_KEY}")
    issue = only_issue(text)
    assert (issue.path, issue.message) == (("venues", "totalis"), "missing required key `api_key`")


def test_top_level_must_be_a_mapping() -> None:
    for text in ("", "- venues\n- desks\n", "just a string\n"):
        issue = only_issue(text)
        assert (issue.path, issue.line) == ((), 1)
        assert "expected a mapping" in issue.message


def test_load_config_reports_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as raised:
        load_config(missing)
    (issue,) = raised.value.issues
    assert issue.file == str(missing)
    assert "cannot read file" in issue.message


# ---- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1.5s", 1.5),
        ("7", 7.0),
        ("2.5", 2.5),
        ("0", 0.0),
    ],
)
def test_durations_parse(written: str, seconds: float) -> None:
    config = parse_config(MINIMAL + f"alerts:\n  event_resolve_after: {written}\n", FILE, {})
    value = config.alerts.event_resolve_after
    assert isinstance(value, Duration)
    assert value == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("written", ["10x", "-5", "-1s", "1e3s", "ten", "true", "''", "[1]", "1.5.s", "null"])
def test_bad_durations_are_rejected_with_path_and_line(written: str) -> None:
    text = MINIMAL + f"alerts:\n  event_resolve_after: {written}\n"
    issue = only_issue(text)
    assert issue.path == ("alerts", "event_resolve_after")
    assert issue.line == line_of(text, "event_resolve_after")


@pytest.mark.parametrize("reconnect", ["{initial: .nan}", "{initial: .inf, max: .inf}"])
def test_non_finite_durations_are_rejected(reconnect: str) -> None:
    text = add_after(MINIMAL, "urls: [ws://127.0.0.1:8790]", f"reconnect: {reconnect}")
    issue = only_issue(text)
    assert issue.path[:3] == ("venues", "mango", "reconnect")


def test_duration_parse_directly() -> None:
    assert Duration.parse("250ms") == 0.25
    assert Duration.parse(" 10s ") == 10.0
    assert Duration.parse(3) == 3.0
    assert isinstance(Duration.parse(3), Duration)
    for bad in (True, False, -1, -0.5, "-1s", "1 minute", "", None, [1]):
        with pytest.raises(ValueError, match="duration"):
            Duration.parse(bad)


def test_for_under_limits_maps_to_pending_for() -> None:
    text = MINIMAL + "    limits:\n      for: 45s\n"
    config = parse_config(text, FILE, {})
    assert config.desks["desk-a"].limits.pending_for == 45.0
    # The Python name is not a config key: `pending_for:` is a typo that names `for` as expected.
    issue = only_issue(text.replace("for: 45s", "pending_for: 45s"))
    assert issue.path == ("desks", "desk-a", "limits", "pending_for")
    assert "for" in issue.message.split("expected one of", 1)[1].replace(",", " ").split()


# ---- secrets never leak -------------------------------------------------------------------------


def test_secret_repr_and_str_never_show_the_value() -> None:
    secret = Secret("hunter2-secret")
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), repr({"k": secret})):
        assert "hunter2" not in shown
        assert "***" in shown
    assert secret.reveal() == "hunter2-secret"
    assert secret == Secret("hunter2-secret")
    assert secret != Secret("other")
    assert secret != "hunter2-secret"  # a Secret never compares equal to a plain string


def test_parsed_config_repr_never_shows_secret_values() -> None:
    config = parse_config(VALID, FILE, SECRETS)
    assert_no_secret(repr(config))
    assert_no_secret(str(config.venues))
    assert_no_secret(repr(config.server))


def test_config_error_never_contains_secret_values() -> None:
    # Errors in the very sections that carry secrets, with every secret set.
    text = add_after(VALID, "secret_key: ${PX_SECRET_KEY}", "secrt: 1")
    text = replace_once(text, "rfq_ids: [rfq-1, rfq-2]", "rfq_ids: 5")
    text = replace_once(text, "port: 9861", "port: ${RISKMON_TOKEN}")
    text = replace_once(text, "ws://127.0.0.1:8790/", "http://127.0.0.1:8790/?key=${MOBULA_API_KEY}")
    text = add_after(text, "api_key: ${MOBULA_API_KEY}", "url: 5")
    text = replace_once(text, "symbols: [SOL, BTC]", "symbols: ${PX_ACCESS_KEY}")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, FILE, SECRETS)
    paths = {issue.path[:2] for issue in raised.value.issues}
    assert paths == {
        ("server", "port"),
        ("venues", "mobula"),
        ("venues", "prophetx"),
        ("venues", "totalis"),
        ("venues", "phoenix"),
    }
    assert_no_secret(str(raised.value))
    assert_no_secret(repr(raised.value.issues))

    # Semantic checks run once the shape is valid: a secret inside a rejected URL stays hidden too.
    text = replace_once(VALID, "ws://127.0.0.1:8790/", "http://127.0.0.1:8790/?key=${MOBULA_API_KEY}")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, FILE, SECRETS)
    assert [issue.path for issue in raised.value.issues] == [("venues", "mango", "urls", 0)]
    assert_no_secret(str(raised.value))


# ---- YAML-level problems -------------------------------------------------------------------


def test_duplicate_keys_are_reported_with_the_line_of_the_repeat() -> None:
    text = add_after(MINIMAL, "urls: [ws://127.0.0.1:8790]", "urls: [ws://127.0.0.1:8791]")
    text += f"desks:\n  desk-b:\n    accounts:\n      mango: [{ACCOUNT_B}]\n"
    issues = issues_of(text)
    assert [(issue.path, issue.line, issue.message) for issue in issues] == [
        (("venues", "mango", "urls"), line_of(text, "urls:", 2), "duplicate key"),
        (("desks",), line_of(text, "desks:", 2), "duplicate key"),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("venues:\n  mango:\n    urls: [ws://h:1\ndesks:\n  d: {}\n", 4),
        ("venues:\n\tmango: {}\n", 2),
        ("venues:\n  mango: {kind: mango_v3_fills\ndesks: {}\n", 3),
        ("venues: &a\n  x: *b\n", 2),
    ],
)
def test_invalid_yaml_is_reported_with_a_line(text: str, line: int) -> None:
    issue = only_issue(text)
    assert issue.file == FILE
    assert issue.line == line
    assert issue.path == ()
    assert issue.message.startswith("invalid YAML")
    assert str(issue).startswith(f"{FILE}:{line}: (top level): invalid YAML")


def test_yaml_tags_that_build_objects_are_refused() -> None:
    issue = only_issue("venues: !!python/object/apply:os.system ['true']\ndesks: {}\n")
    assert issue.message.startswith("invalid YAML")


# ---- semantic checks -----------------------------------------------------------------------


def test_semantic_errors_are_all_reported_with_paths_and_lines() -> None:
    text = textwrap.dedent(
        f"""\
        venues:
          mango:
            kind: mango_v3_fills
            urls: [ws://127.0.0.1:1, http://127.0.0.1:2, 127.0.0.1:3]
            markets:
              XYZ-PERP: {{base_lot_size: 0, quote_lot_size: 10, base_decimals: 6}}
            reconnect: {{initial: 10s, max: 1s}}
          mobula:
            kind: mobula_perp_events
            api_key: k
            chain_ids: ["evm:42161", "lighter:301"]
          phoenix:
            kind: phoenix
            authority: auth
            trader_pda_index: 256
        desks:
          desk-a:
            accounts:
              mango: [{ACCOUNT_A}, {ACCOUNT_A[:-4]}, 0OIl{ACCOUNT_A[4:]}]
              mobula: ["0xAbC1000000000000000000000000000000000001", "0xAbC1"]
              kraken: [k-1]
            limits:
              warn_at: 1.5
              clear_at: 1
              max_net_notional_usd:
                - market: SOL-PERP
                  max_usd: 0
              max_gross_notional_usd: -5
          desk-b:
            accounts:
              mango: [{ACCOUNT_B}, {ACCOUNT_A}]
              mobula: ["0xabc1000000000000000000000000000000000001"]
            limits:
              warn_at: 0
        """
    )
    issues = issues_of(text, {})
    found = {(issue.path, issue.line): issue.message for issue in issues}
    expected = {
        (("venues", "mango", "urls", 1), line_of(text, "urls:")): "ws:// or wss://",
        (("venues", "mango", "urls", 2), line_of(text, "urls:")): "ws:// or wss://",
        (("venues", "mango", "markets", "XYZ-PERP", "base_lot_size"), line_of(text, "XYZ-PERP")): "positive",
        (("venues", "mango", "reconnect"), line_of(text, "reconnect:")): "initial <= max",
        (("venues", "phoenix", "trader_pda_index"), line_of(text, "trader_pda_index")): "0 to 255",
        (("venues", "phoenix", "authority"), line_of(text, "authority: auth")): "base58 wallet",
        (("venues", "mobula", "chain_ids", 1), line_of(text, "chain_ids:")): "uses lighter:304",
        (("desks", "desk-a", "accounts", "mobula", 1), line_of(text, "mobula: [")): "0x and 40 hex digits",
        (("desks", "desk-a", "accounts", "mango", 1), line_of(text, "mango: [")): "base58 MangoAccount",
        (("desks", "desk-a", "accounts", "mango", 2), line_of(text, "mango: [")): "base58 MangoAccount",
        (("desks", "desk-a", "accounts", "kraken"), line_of(text, "kraken:")): "no venue named `kraken`",
        (("desks", "desk-a", "limits", "warn_at"), line_of(text, "warn_at: 1.5")): "(0, 1]",
        (("desks", "desk-a", "limits", "clear_at"), line_of(text, "clear_at: 1")): "(0, 1)",
        (
            ("desks", "desk-a", "limits", "max_net_notional_usd", 0, "max_usd"),
            line_of(text, "max_usd: 0"),
        ): "positive amount",
        (("desks", "desk-a", "limits", "max_gross_notional_usd"), line_of(text, "max_gross")): "positive amount",
        (("desks", "desk-b", "accounts", "mango", 1), line_of(text, "mango: [", 2)): "belongs to desk `desk-a`",
        # Mobula addresses are case-insensitive: the same wallet in two cases is one account.
        (("desks", "desk-b", "accounts", "mobula", 0), line_of(text, "mobula: [", 2)): "belongs to desk `desk-a`",
        (("desks", "desk-b", "limits", "warn_at"), line_of(text, "warn_at: 0")): "(0, 1]",
    }
    assert set(found) == set(expected), sorted(str(issue) for issue in issues)
    for key, fragment in expected.items():
        assert fragment in found[key], (key, found[key])


@pytest.mark.parametrize(
    "account",
    [
        ACCOUNT_A[:-4],  # valid base58, too short
        ACCOUNT_A + "1111",  # valid base58, too long
        "0" + ACCOUNT_A[1:],  # '0' is not in the base58 alphabet
        "not-a-key",
        "ДMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm",  # non-ASCII
    ],
)
def test_bad_mango_pubkeys_are_rejected(account: str) -> None:
    issue = only_issue(MINIMAL.replace(ACCOUNT_A, account))
    assert issue.path == ("desks", "desk-a", "accounts", "mango", 0)
    assert "32 bytes" in issue.message


def test_same_account_on_two_venues_of_one_desk_is_fine() -> None:
    text = textwrap.dedent(
        f"""\
        venues:
          mango:
            kind: mango_v3_fills
            urls: [ws://127.0.0.1:8790]
          mango-2:
            kind: mango_v3_fills
            urls: [ws://127.0.0.1:8791]
        desks:
          desk-a:
            accounts:
              mango: [{ACCOUNT_A}]
              mango-2: [{ACCOUNT_A}]
        """
    )
    config = parse_config(text, FILE, {})
    assert config.desks["desk-a"].accounts == {"mango": [ACCOUNT_A], "mango-2": [ACCOUNT_A]}


def test_url_with_invalid_port_is_rejected() -> None:
    issue = only_issue(MINIMAL.replace("ws://127.0.0.1:8790", "ws://127.0.0.1:99999"))
    assert issue.path == ("venues", "mango", "urls", 0)


def test_numeric_desk_name_is_a_located_error_not_a_crash() -> None:
    issue = only_issue(MINIMAL.replace("  desk-a:", "  5:"))
    assert issue.path[:2] == ("desks", "5")


def test_non_string_market_key_is_located_under_markets() -> None:
    text = MINIMAL.replace(
        "urls: [ws://127.0.0.1:8790]",
        "urls: [ws://127.0.0.1:8790]\n    markets:\n      1: {base_lot_size: 1, quote_lot_size: 1, base_decimals: 6}",
    )
    issue = only_issue(text)
    assert issue.path[:3] == ("venues", "mango", "markets")
    assert "$." not in issue.message


# ---- the CLI --------------------------------------------------------------------------------


def test_cli_check_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "monitor.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"OK: {path}")
    assert "5 venues, 2 desks" in out
    assert "error" not in err
    assert_no_secret(out + err)


def test_cli_check_invalid_file_prints_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PX_SECRET_KEY")
    text = VALID.replace("port: 9861", "port: high").replace("trader_pda_index: 3", "trader_pda_idx: 3")
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert len(raised.value.issues) == 3

    assert main(["check", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "OK" not in out
    lines = err.splitlines()
    assert lines == [f"error: {issue}" for issue in raised.value.issues]
    assert f"error: {path}:{line_of(text, 'port: high')}: server.port: " in err
    assert f"error: {path}:{line_of(text, 'trader_pda_idx')}: venues.phoenix.trader_pda_idx: unknown key" in err
    assert f"error: {path}:{line_of(text, 'secret_key:')}: venues.prophetx.secret_key: " in err
    assert "PX_SECRET_KEY" in err
    assert_no_secret(out + err)


def test_cli_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check", "-c", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err.startswith(f"error: {path}: ")
    assert "cannot read file" in err


def check_with_dummy_env(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str, set[str]]:
    names = set(ENV_REF.findall(path.read_text(encoding="utf-8")))
    for name in names:
        # URLs must look like URLs of their kind (REST ones http://, stream ones ws://); anything
        # else only needs to be non-empty.
        if "URL" not in name.upper():
            value = f"dummy-{name.lower()}"
        elif "PROPHETX" in name.upper() or "REST" in name.upper() or "WEBHOOK" in name.upper():
            value = "http://127.0.0.1:9"
        else:
            value = "ws://127.0.0.1:9"
        monkeypatch.setenv(name, value)
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err, names


def test_example_monitor_yaml_passes_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "monitor.yaml"
    if not path.is_file():
        pytest.skip(f"{path} does not exist yet (it is being written in parallel)")
    code, out, err, _ = check_with_dummy_env(path, capsys, monkeypatch)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"OK: {path}")


def test_packaged_demo_yaml_passes_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "riskmon" / "demo" / "demo.yaml"
    code, out, err, names = check_with_dummy_env(path, capsys, monkeypatch)
    assert names, "the demo config takes its simulator URL from ${...}"
    assert (code, err) == (0, ""), err
    assert out.startswith(f"OK: {path}")


def test_numbers_from_env_vars_are_accepted_where_numbers_are_expected() -> None:
    text = MINIMAL + "server:\n  port: ${PORT}\nalerts:\n  event_resolve_after: ${RESOLVE}\n"
    config = parse_config(text, FILE, {"PORT": "9999", "RESOLVE": "90"})
    assert config.server.port == 9999
    assert config.alerts.event_resolve_after == 90.0
    issue = only_issue(text.replace("${PORT}", "${BADPORT}"), environ={"BADPORT": "nine", "RESOLVE": "1"})
    assert issue.path == ("server", "port")


def test_underlyings_map_venue_markets_and_name_only_known_venues() -> None:
    text = MINIMAL + "underlyings:\n  SOL: {mango: SOL-PERP, phoenix: SOL}\n  BTC: {mango: BTC-PERP}\n"
    issue = only_issue(text)
    assert issue.path == ("underlyings", "SOL", "phoenix")
    assert issue.line == line_of(text, "SOL: {")
    assert "no venue named `phoenix`" in issue.message
    config = parse_config(text.replace(", phoenix: SOL", ""), FILE, {})
    assert config.underlyings == {"SOL": {"mango": "SOL-PERP"}, "BTC": {"mango": "BTC-PERP"}}


@pytest.mark.parametrize(
    ("venue_yaml", "path", "fragment"),
    [
        ("kind: mobula_perp_events\n    api_key: k\n    url: https://x.example/", ("url",), "ws:// or wss://"),
        ("kind: totalis_rfq\n    api_key: k\n    rest_url: wss://x.example", ("rest_url",), "http:// or https://"),
        ("kind: mobula_perp_events\n    api_key: k\n    chain_ids: []", ("chain_ids",), "at least one chain id"),
    ],
)
def test_venue_urls_and_chain_ids_are_checked(venue_yaml: str, path: tuple[str, ...], fragment: str) -> None:
    text = MINIMAL.replace("desks:", f"  extra:\n    {venue_yaml}\ndesks:")
    issue = only_issue(text)
    assert issue.path == ("venues", "extra", *path)
    assert fragment in issue.message
