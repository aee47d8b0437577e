"""Inhibition rules: source/target/equal semantics, no self-inhibition, incremental upkeep."""

from __future__ import annotations

import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.inhibition import Inhibitor, InhibitRule
from riskmon.alerts.matchers import Matcher

VENUE_DOWN = InhibitRule.parse(["alertname=VenueDown"], ['alertname=~"FeedStale|PositionStale"'], ["venue"])

DOWN_MANGO = {"alertname": "VenueDown", "venue": "mango", "severity": "critical"}
DOWN_PHOENIX = {"alertname": "VenueDown", "venue": "phoenix", "severity": "critical"}
STALE_MANGO = {"alertname": "FeedStale", "venue": "mango", "market": "SOL-PERP", "severity": "warning"}
STALE_PHOENIX = {"alertname": "FeedStale", "venue": "phoenix", "severity": "warning"}
BREACH_MANGO = {"alertname": "ExposureBreach", "venue": "mango", "desk": "macro", "severity": "critical"}


def test_parse_builds_matchers_and_deduplicates_equal() -> None:
    rule = InhibitRule.parse(['severity="critical"'], ["severity=~warn.*"], ["venue", "desk", "venue"])
    assert rule.source == (Matcher("severity", "=", "critical"),)
    assert rule.target == (Matcher("severity", "=~", "warn.*"),)
    assert rule.equal == ("venue", "desk")
    assert str(rule) == '{severity="critical"} inhibits {severity=~"warn.*"} on (venue, desk)'


@pytest.mark.parametrize(
    ("source", "target", "equal", "message"),
    [
        ([], ["a=b"], [], "source_matchers: at least one matcher is required"),
        (["a=b"], [], [], "target_matchers: at least one matcher is required"),
        (["a=b", "=x"], ["c=d"], [], r"source_matchers: matcher \[1\]: bad matcher format"),
        (["a=b"], ['c=~"["'], [], "target_matchers: matcher \\[0\\]: invalid regular expression"),
        (["a=b"], ["c=d"], ["venue", "bad-name"], r"equal \[1\]: 'bad-name' is not a label name"),
    ],
)
def test_parse_errors_name_the_bad_part(source: list[str], target: list[str], equal: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InhibitRule.parse(source, target, equal)


def test_a_firing_source_inhibits_matching_targets_with_equal_labels() -> None:
    inhibitor = Inhibitor([VENUE_DOWN])
    inhibitor.update([DOWN_MANGO])
    assert inhibitor.inhibited_by(STALE_MANGO) == (fingerprint(DOWN_MANGO),)
    assert inhibitor.is_inhibited(STALE_MANGO)
    assert inhibitor.inhibited_by(STALE_PHOENIX) == ()  # different venue
    assert not inhibitor.is_inhibited(STALE_PHOENIX)
    assert inhibitor.inhibited_by(BREACH_MANGO) == ()  # not a target
    assert inhibitor.inhibited_by(DOWN_PHOENIX) == ()


def test_missing_equal_label_on_both_sides_counts_as_equal() -> None:
    inhibitor = Inhibitor([InhibitRule.parse(["alertname=VenueDown"], ["alertname=FeedStale"], ["region"])])
    inhibitor.update([DOWN_MANGO])
    assert inhibitor.inhibited_by(STALE_MANGO) == (fingerprint(DOWN_MANGO),)
    assert inhibitor.inhibited_by({**STALE_MANGO, "region": "eu"}) == ()
    inhibitor.update([{**DOWN_MANGO, "region": ""}])  # an empty value is the same as a missing one
    assert inhibitor.is_inhibited(STALE_MANGO)


def test_an_alert_never_inhibits_itself_but_an_equal_peer_does() -> None:
    critical_mutes_warning = InhibitRule.parse(["severity=~critical|warning"], ["severity=~critical|warning"], ["desk"])
    inhibitor = Inhibitor([critical_mutes_warning])
    breach_macro = {"alertname": "ExposureBreach", "desk": "macro", "severity": "critical"}
    drift_macro = {"alertname": "PositionDrift", "desk": "macro", "severity": "warning"}
    inhibitor.update([breach_macro])
    assert inhibitor.inhibited_by(breach_macro) == ()
    assert not inhibitor.is_inhibited(breach_macro)
    assert inhibitor.inhibited_by(drift_macro) == (fingerprint(breach_macro),)
    inhibitor.fire(drift_macro)
    assert inhibitor.inhibited_by(breach_macro) == (fingerprint(drift_macro),)
    assert inhibitor.is_inhibited(breach_macro)


def test_fire_and_resolve_keep_the_index_current() -> None:
    inhibitor = Inhibitor([VENUE_DOWN])
    assert not inhibitor.is_inhibited(STALE_MANGO)
    inhibitor.fire(DOWN_MANGO)
    inhibitor.fire(DOWN_MANGO)  # idempotent
    second_source = {**DOWN_MANGO, "severity": "page"}
    inhibitor.fire(second_source)
    assert inhibitor.inhibited_by(STALE_MANGO) == tuple(sorted([fingerprint(DOWN_MANGO), fingerprint(second_source)]))
    inhibitor.resolve(DOWN_MANGO)
    assert inhibitor.inhibited_by(STALE_MANGO) == (fingerprint(second_source),)
    inhibitor.resolve(second_source)
    inhibitor.resolve(second_source)  # idempotent
    inhibitor.resolve(BREACH_MANGO)  # never a source: no effect
    assert inhibitor.inhibited_by(STALE_MANGO) == ()


def test_update_replaces_the_firing_set() -> None:
    inhibitor = Inhibitor([VENUE_DOWN])
    inhibitor.update([DOWN_MANGO])
    inhibitor.update([DOWN_PHOENIX])
    assert not inhibitor.is_inhibited(STALE_MANGO)
    assert inhibitor.inhibited_by(STALE_PHOENIX) == (fingerprint(DOWN_PHOENIX),)


def test_sources_from_several_rules_are_all_reported() -> None:
    liquidation = InhibitRule.parse(["alertname=Liquidation"], ["alertname=ExposureBreach"], ["desk"])
    inhibitor = Inhibitor([VENUE_DOWN, liquidation, InhibitRule.parse(["alertname=VenueDown"], ["desk=macro"], [])])
    liq = {"alertname": "Liquidation", "desk": "macro", "venue": "phoenix"}
    inhibitor.update([DOWN_MANGO, liq, STALE_PHOENIX])
    assert inhibitor.inhibited_by(BREACH_MANGO) == tuple(sorted([fingerprint(DOWN_MANGO), fingerprint(liq)]))


def test_a_check_does_not_scan_firing_alerts() -> None:
    """Many firing sources on other venues do not make a check walk them: only the matching bucket counts."""
    inhibitor = Inhibitor([VENUE_DOWN])
    inhibitor.update({"alertname": "VenueDown", "venue": f"v{i}"} for i in range(5000))
    assert len(inhibitor._sources[0]) == 5000
    assert inhibitor.inhibited_by({"alertname": "FeedStale", "venue": "v42"}) == (
        fingerprint({"alertname": "VenueDown", "venue": "v42"}),
    )
    assert not inhibitor.is_inhibited({"alertname": "FeedStale", "venue": "v5000"})
