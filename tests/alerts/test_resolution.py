"""The `resolution` annotation: a resolved alert keeps the annotations it last fired with and adds
`resolution` (why it resolved) where its resolver knows; a firing alert never carries it. Covered
here: the tracker's contract, the limit and threshold rules' wording through the real engine, and
the Alertmanager push. The watchdogs' wordings are asserted in tests/watchdogs, Slack's rendering
in tests/notify/test_slack.py."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import RESOLUTION, AlertTracker, AlertTransition, Wording
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.engine import Engine
from riskmon.events import QuoteStatus
from riskmon.notify.alertmanager import postable_alert
from riskmon.notify.console import format_transition
from tests.rules.conftest import MANGO, T0, desks_with, fill, make_config, make_engine, mark
from tests.watchdogs.conftest import TOT, quote

LABELS = {"desk": "alpha"}


def observe(
    tracker: AlertTracker,
    now: float,
    *,
    breached: bool,
    annotations: dict[str, str] | Wording,
    resolution: str | None = None,
    pending_for: float = 0.0,
    value: float | None = None,
) -> AlertTransition | None:
    """The Breach alert on LABELS judged at `now`, at 1.0 if breached and 0.0 if not unless `value` says."""
    return tracker.observe(
        "Breach",
        "critical",
        LABELS,
        breached=breached,
        cleared=not breached,
        value=(1.0 if breached else 0.0) if value is None else value,
        annotations=annotations,
        pending_for=pending_for,
        now=now,
        resolution=resolution,
    )


def test_only_the_resolved_transition_carries_the_resolution_next_to_the_firing_annotations() -> None:
    tracker = AlertTracker(DeadlineHeap())
    fired = observe(tracker, T0, breached=True, annotations={"summary": "at 101"}, resolution="not yet")
    assert fired is not None
    assert (fired.status, fired.annotations) == ("firing", {"summary": "at 101"})
    # Still firing: a resolution passed along with an evaluation that does not clear goes nowhere.
    assert observe(tracker, T0 + 1, breached=True, annotations={"summary": "at 120"}, resolution="no") is None
    (active,) = tracker.active()
    assert active.annotations == {"summary": "at 120"}
    resolved = observe(tracker, T0 + 2, breached=False, annotations={"summary": "at 10"}, resolution="back to 10")
    assert resolved is not None
    assert (resolved.status, resolved.annotations) == ("resolved", {"summary": "at 120", RESOLUTION: "back to 10"})


def test_a_resolver_that_does_not_know_why_adds_nothing() -> None:
    tracker = AlertTracker(DeadlineHeap())
    observe(tracker, T0, breached=True, annotations={"summary": "s"})
    resolved = observe(tracker, T0 + 1, breached=False, annotations={})
    assert resolved is not None
    assert resolved.annotations == {"summary": "s"}
    # A one-off alert resolving by itself has no resolution either.
    tracker.fire_event("Revoked", "warning", LABELS, {"summary": "e"}, resolve_after=60, now=T0)
    expired = tracker.on_deadline(("alert-expire", tracker.active()[0].fingerprint), T0 + 60)
    assert expired is not None
    assert (expired.status, expired.annotations) == ("resolved", {"summary": "e"})


def test_a_firing_alert_never_carries_resolution_even_when_its_annotations_name_one() -> None:
    tracker = AlertTracker(DeadlineHeap())
    worded = {"summary": "s", RESOLUTION: "a template's text"}
    fired = observe(tracker, T0, breached=True, annotations=worded)
    assert fired is not None
    assert fired.annotations == {"summary": "s"}
    assert observe(tracker, T0 + 1, breached=True, annotations={**worded, "summary": "s2"}) is None
    assert [a.annotations for a in tracker.active()] == [{"summary": "s2"}]
    event = tracker.fire_event("Revoked", "warning", LABELS, worded, resolve_after=60, now=T0)
    assert event is not None
    assert event.annotations == {"summary": "s"}
    assert all(RESOLUTION not in t.annotations for t in tracker.firing())


def test_a_pending_alert_that_stops_breaching_sends_nothing_and_no_resolution() -> None:
    tracker = AlertTracker(DeadlineHeap())
    assert observe(tracker, T0, breached=True, annotations={"summary": "s"}, pending_for=30) is None
    assert observe(tracker, T0 + 5, breached=False, annotations={}, resolution="back") is None
    assert tracker.active() == []


PENDING_LIMIT = """
limits:
  max_pending_rfq_usd: 1000
  warn_at: 0.8
  clear_at: 0.95
"""


def test_a_limit_resolution_states_the_clearing_value_to_the_cent_against_the_limit() -> None:
    engine = Engine(make_config(desks=desks_with(alpha=PENDING_LIMIT)))
    deadline = T0 + 3600
    q1 = quote("q1", rfq_id="r1", deadline=deadline, worst_case_loss_usd=Decimal("949.60"))
    q2 = quote("q2", rfq_id="r2", deadline=deadline, worst_case_loss_usd=Decimal("50.40"))
    fired = engine.ingest(TOT, [q1, q2], T0)
    assert sorted((t.status, t.severity) for t in fired if t.alertname == "ExposureLimitBreach") == [
        ("firing", "critical"),
        ("firing", "warning"),
    ]
    assert all(RESOLUTION not in t.annotations for t in fired)
    # q2 confirms: $949.60 pending, just under the critical's $950 clear level. In whole dollars
    # ("$950") it would read as not cleared at all.
    (resolved,) = engine.ingest(TOT, [quote("q2", QuoteStatus.CONFIRMED, rfq_id="r2")], T0 + 1)
    assert (resolved.status, resolved.severity) == ("resolved", "critical")
    assert resolved.annotations[RESOLUTION] == "back to $949.60 against the $1,000.00 limit"
    assert resolved.annotations["summary"] == "Desk alpha pending RFQ exposure is $1,000, 100% of its $1,000 limit"
    (warning,) = engine.alerts.active()  # the warning clears only below $760
    assert RESOLUTION not in warning.annotations


THRESHOLD = """
rules:
  - kind: threshold
    name: BigNet
    severity: critical
    when: market.net_usd > 1000
    clear: market.net_usd < 800
  - kind: threshold
    name: BigNetPosition
    severity: warning
    when: market.net_usd > 1000
    value: market.position
"""


def test_a_threshold_rule_resolution_states_the_value_against_its_threshold() -> None:
    engine = make_engine(THRESHOLD)
    fired = engine.ingest(MANGO, [fill("10"), mark("150")], T0)  # 1500 > 1000
    assert sorted(t.alertname for t in fired if t.status == "firing") == ["BigNet", "BigNetPosition"]
    assert all(RESOLUTION not in t.annotations for t in fired)
    resolved = {t.alertname: t for t in engine.ingest(MANGO, [mark("79.9")], T0 + 1)}  # 799
    assert resolved["BigNet"].status == "resolved"
    assert resolved["BigNet"].annotations[RESOLUTION] == "back to 799 against the threshold of 1000"
    assert resolved["BigNet"].annotations["summary"] == "BigNet: 1500"  # as it fired
    # Its own `value` is not the compared quantity: no threshold is set against it.
    assert resolved["BigNetPosition"].annotations[RESOLUTION] == "cleared at 10"


def resolved_transition() -> AlertTransition:
    return AlertTransition(
        ts=T0 + 60,
        status="resolved",
        alertname="RfqConfirmationMissed",
        severity="critical",
        labels={"desk": "alpha", "venue": TOT, "quote_id": "q1", "alertname": "RfqConfirmationMissed"},
        annotations={
            "summary": "tot quote q1: confirmation deadline missed",
            RESOLUTION: "the venue reports it confirmed after the deadline",
        },
        fingerprint="0123456789abcdef",
        starts_at=T0,
    )


def test_the_alertmanager_push_carries_the_resolution_as_an_annotation() -> None:
    posted = postable_alert(resolved_transition(), now=T0 + 60, resend_interval=60, generator_url="")
    assert posted["annotations"] == {
        RESOLUTION: "the venue reports it confirmed after the deadline",
        "summary": "tot quote q1: confirmation deadline missed",
    }


def test_the_console_line_of_a_resolved_alert_says_why_it_resolved() -> None:
    assert "confirmed after the deadline" in format_transition(resolved_transition())


def test_a_worded_later_alert_is_worded_only_when_it_starts_or_is_read() -> None:
    """A firing alert re-judged at every mark is given a Wording, not annotations: the wording runs
    when the alert starts, when something reads its annotations, and for its resolution, always
    from the latest value it was observed at."""
    tracker = AlertTracker(DeadlineHeap())
    worded: list[int] = []

    def wording(at: int) -> Callable[[], dict[str, str]]:
        def word() -> dict[str, str]:
            worded.append(at)
            return {"summary": f"at {at}", RESOLUTION: "dropped while firing"}

        return word

    def judge(now: float, at: int, *, breached: bool = True) -> AlertTransition | None:
        resolution = None if breached else f"back to {at}"
        return observe(tracker, now, breached=breached, annotations=wording(at), resolution=resolution, value=float(at))

    fired = judge(T0, 101)
    assert fired is not None
    assert fired.annotations == {"summary": "at 101"}
    for k, at in enumerate(range(102, 120)):
        assert judge(T0 + 1 + k, at) is None
    assert worded == [101]  # eighteen re-judgings worded nothing
    (active,) = tracker.active()
    assert (active.value, active.annotations) == (119.0, {"summary": "at 119"})
    assert active.annotations == {"summary": "at 119"}
    assert worded == [101, 119]  # read twice, worded once
    assert judge(T0 + 30, 120) is None
    resolved = judge(T0 + 31, 10, breached=False)
    assert resolved is not None
    assert resolved.annotations == {"summary": "at 120", RESOLUTION: "back to 10"}
    assert worded == [101, 119, 120]  # the clearing value is never worded into the summary


def test_a_caller_kept_fingerprint_finds_the_same_alert_as_the_labels() -> None:
    tracker = AlertTracker(DeadlineHeap())
    fired = observe(tracker, T0, breached=True, annotations={"summary": "x"})
    assert fired is not None
    assert fired.fingerprint == fingerprint({**LABELS, "alertname": "Breach", "severity": "critical"})
    resolved = tracker.observe(
        "Breach",
        "critical",
        LABELS,
        breached=False,
        cleared=True,
        value=0.0,
        annotations={},
        pending_for=0.0,
        now=T0 + 1,
        fp=fired.fingerprint,
    )
    assert resolved is not None
    assert resolved.status == "resolved"
    assert tracker.active() == []
