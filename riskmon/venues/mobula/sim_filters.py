"""The Mobula Perp Events simulator's subscription filters (protocols.md §2.2): which pushed events a
subscriber asked for.

The subscribe payload's ``filters`` tree is {"or": [...]}, {"and": [...]} or {"eq": [field, value]}.
[I] A dotted field ("extra.cancelReason") walks into nested objects; equality is exact (no case
folding), and a field absent from the event never matches.
"""

from __future__ import annotations

from typing import Final

from riskmon.venues.mobula.sim_frames import JsonDict

__all__ = ["filter_matches", "filter_problem"]

_MAX_FILTER_DEPTH: Final = 32


def filter_problem(node: object, depth: int = 0) -> str | None:
    """Why ``node`` is not a valid filter tree, or None when it is."""
    if depth > _MAX_FILTER_DEPTH:
        return f"filters nest deeper than {_MAX_FILTER_DEPTH}"
    if not isinstance(node, dict) or len(node) != 1:
        return "each filter must be an object with exactly one of 'or', 'and', 'eq'"
    ((op, args),) = node.items()
    if op in ("or", "and"):
        if not isinstance(args, list) or not args:
            return f"'{op}' needs a non-empty list"
        for child in args:
            if (problem := filter_problem(child, depth + 1)) is not None:
                return problem
        return None
    if op == "eq":
        if not (isinstance(args, list) and len(args) == 2 and isinstance(args[0], str)):
            return "'eq' needs [field, value]"
        if args[1] is not None and not isinstance(args[1], str | int | float | bool):
            return "'eq' value must be a string, number, boolean or null"
        return None
    return f"unknown filter operator {op!r}"


def filter_matches(node: JsonDict, data: JsonDict) -> bool:
    """Evaluate a tree that ``filter_problem`` accepted against one event's ``data``."""
    ((op, args),) = node.items()
    if op == "or":
        return any(filter_matches(child, data) for child in args)
    if op == "and":
        return all(filter_matches(child, data) for child in args)
    field, expected = args
    found, actual = _lookup(data, field)
    # bool is an int in Python; on the wire true and 1 are different values.
    return found and actual == expected and isinstance(actual, bool) == isinstance(expected, bool)


def _lookup(data: JsonDict, path: str) -> tuple[bool, object]:
    current: object = data
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current
