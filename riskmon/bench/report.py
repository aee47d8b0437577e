"""The targets of issue 7 and the readable report of `riskmon bench` (without --json)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

# name -> (headline key, sub key or None, comparison, target value, unit)
TARGETS: Mapping[str, tuple[str, str | None, Callable[[float, float], bool], float, str]] = {
    "in-process pipeline": ("pipeline_events_per_s", None, operator.ge, 400_000, "events/s"),
    "e2e ratio to the floor": ("e2e_ratio_to_floor", None, operator.ge, 1.0, "x"),
    "alert latency p99": ("alert_latency_ms", "p99", operator.le, 2.0, "ms"),
    "watchdog lateness p99": ("watchdog_lateness_ms", "p99", operator.le, 2.0, "ms"),
    "bytes per open order": ("bytes_per_open_order", None, operator.le, 600, "B"),
    "restart to ready": ("restart_to_ready_s", None, operator.le, 1.0, "s"),
}


def targets(headline: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: the section did not run)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (key, sub, compare, target, unit) in TARGETS.items():
        value = headline.get(key)
        if sub is not None:
            value = value.get(sub) if isinstance(value, Mapping) else None
        symbol = ">=" if compare is operator.ge else "<="
        out[name] = {
            "key": key if sub is None else f"{key}.{sub}",
            "target": f"{symbol} {target:g} {unit}",
            "value": value,
            "met": None if value is None else bool(compare(float(value), target)),
        }
    return out


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.{max(digits, 3)}f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _count(value: Any) -> str:
    """A count a section may lack (a result saved by an older version): `-`."""
    return "-" if value is None else f"{value:,}"


def _percentiles(p: Any) -> str:
    if not isinstance(p, Mapping) or p.get("p50") is None:
        return "-"
    parts = [f"{p[k]:.3f}" for k in ("p50", "p99", "max") if k in p]
    return " / ".join(parts) + " ms"


def _details(sections: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if (p := sections.get("pipeline")) is not None:
        rows.append(
            (
                "pipeline",
                f"{p['frames']:,} frames, {p['events']:,} events in {p['seconds']:.2f} s "
                f"({p['us_per_frame']:.1f} us/frame, {_count(p.get('read_frames'))} frames a read), "
                f"malformed {p['malformed']}, engine errors {p['engine_errors']}",
            )
        )
        mix = ", ".join(f"{v} {share:.0%}" for v, share in p["mix"].items())
        rows.append(("  mix", mix))
    if (e := sections.get("e2e")) is not None:
        rows.append(
            (
                "e2e riskmon",
                f"{e['riskmon_frames_per_s']:,.0f} frames/s "
                f"({e['riskmon_events_per_s']:,.0f} normalized events/s), {e['riskmon_s']:.2f} s",
            )
        )
        rows.append(("e2e floor", f"{e['floor_frames_per_s']:,.0f} frames/s (recv + json.loads), {e['floor_s']:.2f} s"))
        rows.append(
            (
                "e2e sender",
                f"{e['sender_frames_per_s']:,.0f} frames/s into a draining socket "
                f"({e['frames']:,} frames, {e['frame_bytes'] / 1e6:.1f} MB per pass)",
            )
        )
    if (a := sections.get("alerts")) is not None:
        rows.append(
            (
                "alerts",
                f"{a['firing_notifications']}/{a['crossings']} breaches notified "
                f"(+{a['warmup_excluded']} warm-up, {a.get('startup_excluded', 0)} before ready), "
                f"latency {_percentiles(a['latency_ms'])}",
            )
        )
        rows.append(
            (
                "  split",
                f"to the engine {_percentiles(a['to_engine_ms'])}; engine to receiver "
                f"{_percentiles(a['engine_to_receiver_ms'])}",
            )
        )
        rows.append(
            (
                "  background",
                f"{a['rate_offered']:,.0f}/s offered, {a['rate_sent']:,.0f}/s sent, "
                f"{a['frames_applied']:,} applied in {a['duration_s']:.1f} s",
            )
        )
    if (w := sections.get("watchdogs")) is not None:
        rows.append(
            (
                "watchdogs",
                f"{w['pending']:,} pending, {w['fired']:,}/{w['firing']:,} fired, lateness "
                f"{_percentiles(w['lateness_ms'])}, events {w['events_per_s']:,.0f}/s"
                f"{'' if w['kept_up'] else ' (behind the offered rate)'}",
            )
        )
    if (m := sections.get("memory")) is not None:
        rows.append(
            (
                "memory",
                f"{m['bytes_per_open_order']:,.0f} B per open order over {m['orders']:,} "
                f"(+{m['journal_bytes_per_order']:,.0f} B journal until taken)",
            )
        )
    if (r := sections.get("restart")) is not None:
        seed = r["seed"]
        rows.append(
            (
                "restart",
                f"{r['restart_to_ready_s']:.3f} s, {r['deadlines_restored']:,} deadlines restored "
                f"(reading them alone {r['deadline_load_s']:.3f} s; state file {seed['file_bytes'] / 1e6:.1f} MB)",
            )
        )
        rows.append(("  covers", str(r["note"])))
    return rows


def format_report(result: Mapping[str, Any]) -> str:
    lines = [f"{'target':<24} {'value':>14}  {'target':<20}  met"]
    for name, t in result["targets"].items():
        met = "-" if t["met"] is None else ("yes" if t["met"] else "NO")
        lines.append(f"{name:<24} {_number(t['value']):>14}  {t['target']:<20}  {met}")
    lines.append("")
    details = _details(result["sections"])
    width = max((len(name) for name, _ in details), default=0)
    lines.extend(f"{name:<{width}}  {text}" for name, text in details)
    for name, error in result["errors"].items():
        lines.append(f"{name:<{width}}  FAILED: {error}")
    seconds = ", ".join(f"{name} {s:g} s" for name, s in result["section_seconds"].items())
    lines.append("")
    lines.append(f"run: {result['total_s']:g} s ({seconds}){'  [--quick: tiny sizes]' if result['quick'] else ''}")
    lines.append(f"note: {result['machine']['note']}")
    return "\n".join(lines)
