from __future__ import annotations

import re
from typing import Any

import pytest

from riskmon.alerts.matchers import Matcher
from riskmon.alerts.routing import ALL, Route, RouteMatch, parse_duration

TREE: dict[str, Any] = {
    "receiver": "default",
    "group_by": ["desk"],
    "group_wait": "10s",
    "routes": [
        {
            "matchers": ['severity="critical"'],
            "receiver": "pager",
            "group_wait": 0,
            "routes": [
                {"matchers": ['venue=~"mango.*"'], "receiver": "mango-oncall", "repeat_interval": "1h"},
                {"matchers": ["desk=beta"], "group_by": ["..."]},
            ],
        },
        {"matchers": ['desk="alpha"'], "receiver": "alpha-slack", "continue": True, "group_by": ["desk", "market"]},
        {"matchers": ['desk=~"alpha|beta"'], "receiver": "desk-webhook"},
        {"matchers": ["severity=info"], "receiver": "never-reached-for-alpha"},
    ],
}


def receivers(matches: list[RouteMatch]) -> list[str]:
    return [m.receiver for m in matches]


def test_defaults_are_alertmanagers() -> None:
    root = Route.from_dict({"receiver": "r"})
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (30.0, 300.0, 14400.0)
    assert root.group_by == ()
    assert root.route({"a": "b"}) == [
        RouteMatch("r", "{}", "{}:{}", {}, group_wait=30.0, group_interval=300.0, repeat_interval=14400.0)
    ]


def test_children_inherit_unset_settings() -> None:
    root = Route.from_dict(TREE)
    critical = root.routes[0]
    assert (critical.receiver, critical.group_by, critical.group_wait) == ("pager", ("desk",), 0.0)
    assert (critical.group_interval, critical.repeat_interval) == (300.0, 14400.0)
    mango = critical.routes[0]
    assert (mango.receiver, mango.group_wait, mango.repeat_interval, mango.group_by) == (
        "mango-oncall",
        0.0,
        3600.0,
        ("desk",),
    )
    beta = critical.routes[1]
    assert (beta.receiver, beta.group_by) == ("pager", ALL)
    assert beta.matchers == (Matcher("desk", "=", "beta"),)


def test_first_matching_child_wins_depth_first() -> None:
    root = Route.from_dict(TREE)
    [hit] = root.route({"severity": "critical", "venue": "mango_v3", "desk": "alpha"})
    assert hit == RouteMatch(
        receiver="mango-oncall",
        route_id='{}/{severity="critical"}/{venue=~"mango.*"}/0',
        group_key='{}/{severity="critical"}/{venue=~"mango.*"}:{desk="alpha"}',
        group_labels={"desk": "alpha"},
        group_wait=0.0,
        group_interval=300.0,
        repeat_interval=3600.0,
    )


def test_parent_matches_when_no_child_does() -> None:
    root = Route.from_dict(TREE)
    [hit] = root.route({"severity": "critical", "venue": "phoenix", "desk": "gamma"})
    assert hit.receiver == "pager"
    assert hit.route_id == '{}/{severity="critical"}/0'
    assert hit.group_key == '{}/{severity="critical"}:{desk="gamma"}'
    [fallback] = root.route({"severity": "warning", "desk": "gamma"})
    assert (fallback.receiver, fallback.route_id, fallback.group_key) == ("default", "{}", '{}:{desk="gamma"}')


def test_continue_lets_later_siblings_match_too() -> None:
    root = Route.from_dict(TREE)
    hits = root.route({"severity": "info", "desk": "alpha", "market": "SOL-PERP"})
    # alpha-slack continues, desk-webhook does not, so the info route is never tried.
    assert receivers(hits) == ["alpha-slack", "desk-webhook"]
    assert hits[0].group_key == '{}/{desk="alpha"}:{desk="alpha", market="SOL-PERP"}'
    assert hits[1].group_key == '{}/{desk=~"alpha|beta"}:{desk="alpha"}'
    assert receivers(root.route({"severity": "info", "desk": "gamma"})) == ["never-reached-for-alpha"]


def test_group_by_all_and_missing_labels() -> None:
    root = Route.from_dict(TREE)
    [hit] = root.route({"severity": "critical", "desk": "beta", "market": "X"})
    assert hit.group_labels == {"desk": "beta", "market": "X", "severity": "critical"}
    assert hit.group_key == '{}/{severity="critical"}/{desk="beta"}:{desk="beta", market="X", severity="critical"}'
    [no_desk] = root.route({"severity": "warning"})
    assert (no_desk.group_labels, no_desk.group_key) == ({}, "{}:{}")


def test_siblings_with_the_same_matchers_get_distinct_route_ids() -> None:
    root = Route.from_dict({"receiver": "r", "routes": [{"receiver": "a", "continue": True}, {"receiver": "b"}]})
    a, b = root.route({})
    assert (a.receiver, b.receiver) == ("a", "b")
    assert a.group_key == b.group_key == "{}/{}:{}"
    assert (a.route_id, b.route_id) == ("{}/{}/0", "{}/{}/1")


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1d") == 86400.0
    assert parse_duration("0") == 0.0
    assert parse_duration(15) == 15.0
    for bad in ("", "5x", "m", "-1s", True, -3):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "route.receiver: the root route must name a receiver"),
        ({"receiver": "r", "matchers": ["a=b"]}, "route.matchers: the root route matches every alert"),
        ({"receiver": "r", "continue": True}, "route.continue: the root route cannot continue"),
        ({"receiver": "r", "grop_by": []}, "route: unknown key(s) grop_by"),
        ({"receiver": "r", "group_wait": "5x"}, "route.group_wait: invalid duration '5x'"),
        ({"receiver": "r", "group_interval": 0}, "route.group_interval: must be greater than zero"),
        ({"receiver": "r", "repeat_interval": "0s"}, "route.repeat_interval: must be greater than zero"),
        ({"receiver": "r", "group_by": ["desk", "..."]}, "route.group_by: '...' groups by all labels"),
        ({"receiver": "r", "group_by": ["bad-name"]}, "route.group_by[0]: invalid label name 'bad-name'"),
        ({"receiver": "r", "routes": {}}, "route.routes: expected a list"),
        ({"receiver": "r", "routes": [{}, "x"]}, "route.routes[1]: expected a mapping, got str"),
        (
            {"receiver": "r", "routes": [{"routes": [{"matchers": ["a=b", "nope"]}]}]},
            "route.routes[0].routes[0].matchers[1]: bad matcher format 'nope'",
        ),
        (
            {"receiver": "r", "routes": [{"matchers": ['v=~"("']}]},
            "route.routes[0].matchers[0]: invalid regular expression '('",
        ),
        ({"receiver": "r", "routes": [{"continue": "yes"}]}, "route.routes[0].continue: expected true or false"),
        ({"receiver": "r", "routes": [{"receiver": ""}]}, "route.routes[0].receiver: expected a non-empty string"),
    ],
)
def test_bad_config_names_the_path(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Route.from_dict(config)
