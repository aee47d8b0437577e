"""`riskmon test FILE`: rule unit tests in the spirit of `promtool test rules`.

A test file names a config (a path relative to the file, or the config inline), then tests. Each
test feeds input frames (through the venue's codec, exactly as a live run decodes them) or
normalized events at virtual times, and states the alerts firing and the notifications sent at
given times:

    config: monitor.yaml            # or an inline mapping
    env: {MOBULA_API_KEY: test}     # ${VAR} values for the config; the real environment is not read
    tests:
      - name: net limit warns, then breaches
        silences:                   # optional, active from time 0
          - {matchers: ['severity="info"'], duration: 1h}
        input:
          - {at: 0s, venue: mango, frame: '{"events": [...], ...}'}
          - {at: 2s, venue: phoenix, events: [{type: MarkPrice, venue: phoenix, market: SOL, price: "150"}]}
        alerts:                     # the firing alerts at each time; [] means none
          - at: 2s
            firing:
              - {alertname: ExposureLimitBreach, severity: warning, labels: {desk: sol-desk}}
        notifications:              # every notification sent up to the last time, in order
          - {at: 2s, receiver: console, firing: [ExposureLimitBreach], resolved: []}

Labels given in an expectation must match; labels not given are not compared. Time runs from
an arbitrary fixed epoch; `at` is relative to it. Exit 0 when every test passes, 1 on a
mismatch (with a diff), 2 when the file cannot be used.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml

from riskmon.alerts.grouping import Notification
from riskmon.alerts.silences import Silences
from riskmon.capture import decode_events
from riskmon.config.loader import ConfigError, parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import Duration
from riskmon.engine.engine import Engine
from riskmon.notify.notifier import Notifier
from riskmon.venues.base import VenueCodec
from riskmon.venues.registry import AdapterUnavailable, build_codec

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: any fixed instant keeps runs identical


class RuleTestError(ValueError):
    """The test file itself is unusable (not a failing test)."""


class _Input(msgspec.Struct, forbid_unknown_fields=True):
    at: Duration
    venue: str
    frame: str | None = None
    events: list[dict[str, Any]] | None = None


class _AlertExpectation(msgspec.Struct, forbid_unknown_fields=True):
    alertname: str
    severity: str | None = None
    labels: dict[str, str] = {}


class _AlertsAt(msgspec.Struct, forbid_unknown_fields=True):
    at: Duration
    firing: list[_AlertExpectation] = []


class _NotificationExpectation(msgspec.Struct, forbid_unknown_fields=True):
    at: Duration
    receiver: str
    firing: list[str] = []
    resolved: list[str] = []


class _SilenceSpec(msgspec.Struct, forbid_unknown_fields=True):
    matchers: list[str]
    duration: Duration
    starts: Duration = Duration(0.0)


class _Test(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    input: list[_Input] = []
    alerts: list[_AlertsAt] = []
    notifications: list[_NotificationExpectation] | None = None
    silences: list[_SilenceSpec] = []


class _File(msgspec.Struct, forbid_unknown_fields=True):
    config: str | dict[str, Any]
    tests: list[_Test]
    env: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class TestOutcome:
    name: str
    failures: list[str]


def load_test_file(path: Path) -> tuple[MonitorConfig, list[_Test]]:
    try:
        raw = yaml.safe_load(path.read_text())
        spec = msgspec.convert(raw, _File, dec_hook=_decode_duration, strict=False)
    except OSError as exc:
        raise RuleTestError(f"{path}: {exc.strerror}") from None
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise RuleTestError(f"{path}: {exc}") from None
    if isinstance(spec.config, str):
        config_path = (path.parent / spec.config).resolve()
        try:
            text, filename = config_path.read_text(), str(config_path)
        except OSError as exc:
            raise RuleTestError(f"{config_path}: {exc.strerror}") from None
    else:
        text, filename = yaml.safe_dump(spec.config, sort_keys=False), f"{path} (config)"
    try:
        config = parse_config(text, filename, spec.env)
    except ConfigError as exc:
        raise RuleTestError("\n".join(str(issue) for issue in exc.issues)) from None
    return config, spec.tests


def run_test(config: MonitorConfig, test: _Test) -> TestOutcome:
    engine = Engine(config)
    silences = Silences()
    notifier = Notifier(config, silences)
    codecs: dict[str, VenueCodec] = {}
    sent: list[Notification] = []
    for spec in test.silences:
        silences.add(
            spec.matchers,
            starts_at=EPOCH + spec.starts,
            ends_at=EPOCH + spec.starts + spec.duration,
            created_by="riskmon test",
            comment=test.name,
            now=EPOCH,
        )
    # No engine.start(): as in replay, feeds are what the inputs say, not a startup grace running out.
    failures: list[str] = []

    def run_until(t: float) -> None:
        # Engine deadlines and notification timers in time order, each at its own instant.
        while True:
            due = [d for d in (engine.next_deadline(), notifier.next_due()) if d is not None and d <= t]
            if not due:
                return
            step = max(min(due), EPOCH)
            notifier.observe(engine.advance(step), step)
            for n in notifier.due(step).notifications:
                sent.append(n)

    checkpoints = sorted({float(i.at) for i in test.input} | {float(a.at) for a in test.alerts})
    inputs = sorted(test.input, key=lambda i: float(i.at))
    expectations = {float(a.at): a for a in test.alerts}
    for at in checkpoints:
        now = EPOCH + at
        run_until(now)
        for item in (i for i in inputs if float(i.at) == at):
            events = _events(config, codecs, item, test.name)
            transitions = engine.ingest(item.venue, events, now, is_frame=item.frame is not None)
            notifier.observe(transitions, now)
        run_until(now)
        expected = expectations.get(at)
        if expected is not None:
            failures.extend(_compare_alerts(engine, expected, at))
    if test.notifications is not None:
        failures.extend(_compare_notifications(test.notifications, sent))
    return TestOutcome(test.name, failures)


def run_file(path: Path, out: Any) -> int:
    """Run every test of a file, print a verdict per test, and return the exit code."""
    try:
        config, tests = load_test_file(path)
    except RuleTestError as exc:
        print(f"error: {exc}", file=out)
        return 2
    failed = 0
    for test in tests:
        try:
            outcome = run_test(config, test)
        except RuleTestError as exc:
            print(f"error: {path}: test {test.name!r}: {exc}", file=out)
            return 2
        if outcome.failures:
            failed += 1
            print(f"FAILED  {outcome.name}", file=out)
            for failure in outcome.failures:
                print("  " + failure.replace("\n", "\n  "), file=out)
        else:
            print(f"ok      {outcome.name}", file=out)
    print(f"{len(tests) - failed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def _decode_duration(typ: type, value: Any) -> Any:
    if typ is Duration:
        return Duration.parse(value)
    raise NotImplementedError


def _events(config: MonitorConfig, codecs: dict[str, VenueCodec], item: _Input, test: str) -> list[Any]:
    if item.venue not in config.venues:
        raise RuleTestError(f"input at {item.at:g}s: no venue named {item.venue!r} in the config")
    if (item.frame is None) == (item.events is None):
        raise RuleTestError(f"input at {item.at:g}s: give exactly one of `frame` and `events`")
    if item.events is not None:
        try:
            return list(decode_events(item.events))
        except ValueError as exc:
            raise RuleTestError(f"input at {item.at:g}s: {exc}") from None
    codec = codecs.get(item.venue)
    if codec is None:
        try:
            codec = codecs[item.venue] = build_codec(config, item.venue)
        except AdapterUnavailable as exc:
            raise RuleTestError(str(exc)) from None
    assert item.frame is not None
    return list(codec.receive_text(item.frame))


def _alert_line(alertname: str, severity: str | None, labels: dict[str, str]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))
    return f"{alertname} [{severity or '*'}] {{{shown}}}"


def _compare_alerts(engine: Engine, expected: _AlertsAt, at: float) -> list[str]:
    firing = [a for a in engine.alerts.active() if a.state == "firing"]
    unmatched = list(firing)
    missing: list[_AlertExpectation] = []
    for want in expected.firing:
        found = next((a for a in unmatched if _matches(a.alertname, a.severity, a.labels, want)), None)
        if found is None:
            missing.append(want)
        else:
            unmatched.remove(found)
    if not missing and not unmatched:
        return []
    want_lines = sorted(_alert_line(w.alertname, w.severity, w.labels) for w in expected.firing)
    got_lines = sorted(_alert_line(a.alertname, a.severity, a.labels) for a in firing)
    return [f"alerts firing at {at:g}s differ:\n" + _diff(want_lines, got_lines)]


def _matches(alertname: str, severity: str, labels: dict[str, str], want: _AlertExpectation) -> bool:
    if alertname != want.alertname or (want.severity is not None and severity != want.severity):
        return False
    return all(labels.get(k) == v for k, v in want.labels.items())


def _compare_notifications(expected: list[_NotificationExpectation], sent: list[Notification]) -> list[str]:
    def line(at: float, receiver: str, firing: list[str], resolved: list[str]) -> str:
        return f"{at:g}s {receiver}: firing {sorted(firing)} resolved {sorted(resolved)}"

    want = [line(n.at, n.receiver, n.firing, n.resolved) for n in expected]
    got = [
        line(
            round(n.ts - EPOCH, 6),
            n.receiver,
            [a.alertname for a in n.firing],
            [a.alertname for a in n.resolved],
        )
        for n in sent
    ]
    return [] if want == got else ["notifications differ:\n" + _diff(want, got)]


def _diff(want: list[str], got: list[str]) -> str:
    lines = difflib.unified_diff(want, got, "expected", "got", lineterm="", n=len(want) + len(got))
    return "\n".join(lines)
