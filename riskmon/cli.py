"""The `riskmon` command line: demo, run, check, replay."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from riskmon import __version__, silence_cli
from riskmon.bench import add_bench_arguments, add_watchdog_bench_arguments
from riskmon.capture import CaptureError
from riskmon.config import ConfigError, MonitorConfig, load_config


def _load(path: str) -> MonitorConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    print(f"OK: {args.config} ({len(config.venues)} venues, {len(config.desks)} desks)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from riskmon.replay import replay

    config = _load(args.config)
    if config is None:
        return 1
    try:
        result = replay(args.capture, config, run_on=args.run_on)
    except (OSError, CaptureError) as exc:
        print(f"error: {args.capture}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=False))
        return 0
    from riskmon.notify.console import format_transition

    for transition in result.transitions:
        print(format_transition(transition))
    print()
    for row in result.exposure():
        if row["position"] is None:  # a bet or RFQ market: worst-case loss, not a position
            risk = f"{row['worst_case_loss_usd']:,.2f} at risk, {row['pending_usd']:,.2f} pending"
            print(f"{row['desk']:12} {row['venue']:10} {row['market']:16} {risk:>40} USD")
            continue
        notional = "-" if row["notional_usd"] is None else f"{row['notional_usd']:,.2f}"
        print(f"{row['desk']:12} {row['venue']:10} {row['market']:16} {row['position']:>16} {notional:>23} USD")
    print(" ".join(f"{k}={v}" for k, v in result.stats().items()))
    return 0


async def _run_until_signalled(config: MonitorConfig, config_path: Path, record: Path | None) -> None:
    from riskmon.runtime.monitor import Monitor

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    monitor = Monitor(config, record=record, config_path=config_path)
    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task = loop.create_task(monitor.reload())
        reloads.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await monitor.run(stop)


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    try:
        asyncio.run(_run_until_signalled(config, Path(args.config), Path(args.record) if args.record else None))
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from riskmon.runtime.demo import run_demo

    try:
        return asyncio.run(run_demo(args.duration, args.port))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        hint = " (another process holds the metrics port: try --port 0)" if exc.errno == 98 else ""
        print(f"error: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 1


def cmd_test(args: argparse.Namespace) -> int:
    from riskmon.rule_tests import run_file

    return max(run_file(Path(name), sys.stdout) for name in args.files)


def cmd_export_rules(args: argparse.Namespace) -> int:
    from riskmon.config import ConfigIssue
    from riskmon.export_rules import render_rule_file

    config = _load(args.config)
    if config is None:
        return 2
    if config.firm is None:
        issue = ConfigIssue(args.config, None, ("firm",), "no `firm` section: there are no firm-wide limits to export")
        print(f"error: {issue}", file=sys.stderr)
        return 2
    text = render_rule_file(config.firm)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    staged = output.with_name(f".{output.name}.tmp")
    try:
        # Renamed into place, so a Prometheus reloading meanwhile reads the old file or the new one.
        staged.write_text(text, encoding="utf-8")
        staged.replace(output)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        print(f"error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_bench_watchdogs(args: argparse.Namespace) -> int:
    from riskmon.bench.watchdogs import run_from_args

    return run_from_args(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from riskmon.bench.suite import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskmon", description=__doc__)
    parser.add_argument("--version", action="version", version=f"riskmon {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run simulators and the monitor on loopback with a scripted scenario")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument("--port", type=int, default=None, help="metrics port (0 = any free port)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="monitor the configured venues")
    run.add_argument("-c", "--config", required=True)
    run.add_argument("--record", metavar="CAPTURE.jsonl", help="append every received frame to this capture file")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(func=cmd_check)

    rep = sub.add_parser("replay", help="replay a capture on virtual time")
    rep.add_argument("capture")
    rep.add_argument("-c", "--config", required=True)
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.add_argument(
        "--run-on",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep virtual time running this long after the last line, so pending deadlines fire",
    )
    rep.set_defaults(func=cmd_replay)

    silence_cli.register(sub)

    rule_test = sub.add_parser("test", help="run rule unit tests: inputs at times, expected alerts and notifications")
    rule_test.add_argument("files", nargs="+", metavar="RULES_TEST.yaml")
    rule_test.set_defaults(func=cmd_test)

    export = sub.add_parser("export-rules", help="write Prometheus rules for the firm-wide limits (section `firm`)")
    export.add_argument("-c", "--config", required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="write the rule file here (default: standard output)")
    export.set_defaults(func=cmd_export_rules)

    bench = sub.add_parser("bench-watchdogs", help="measure watchdog lateness with many pending deadlines")
    add_watchdog_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench_watchdogs)

    suite = sub.add_parser("bench", help="measure riskmon against its targets and the floor, all sections in one run")
    add_bench_arguments(suite)
    suite.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level
    if args.command in ("demo", "replay", "bench") and level == "INFO":
        level = "WARNING"  # keep the demo view, replay output and bench report readable
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
