"""Webhook latency alone, gateway against the floor: ``make bench``'s latency table
(bench/slices.py), quick enough to run between two changes.

    python -m bench.latency                                  # 100 and 500/s, 9 s a side
    python -m bench.latency --rates 100 500 1000 --seconds 15 --slices 5
    python -m bench.latency --rates 500 --profile            # py-spy on the gateway
    python -m bench.latency --dump /tmp/latency.json         # every payment's latency

``--seconds`` is the load per side and rate, cut into ``--slices`` alternating slices.
``--profile`` samples the gateway with py-spy during its slices only and writes, per
rate, a collapsed-stack file and a speedscope file under /tmp (paths printed), with
the functions that took the most samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

from bench import slices
from bench.run import Databases, postgres_server


async def measure(
    rates: list[float], seconds: float, slice_count: int, profile_dir: Path | None
) -> slices.Measurement:
    with postgres_server() as server_dsn:
        databases = Databases(server_dsn)
        await databases.setup()
        try:
            return await slices.measure(
                await databases.fresh("latency_gateway"),
                await databases.fresh("latency_floor"),
                rates,
                seconds,
                slice_count,
                profile_dir=profile_dir,
                progress=True,
            )
        finally:
            await databases.cleanup()


def describe(measurement: slices.Measurement) -> list[str]:
    figures = measurement.figures()
    lines = slices.table(figures, measurement.rates)
    for rate in measurement.rates:
        lines.append("")
        for subject in slices.SUBJECTS:
            mine = [s for s in measurement.slices if s.subject == subject and s.rate == rate]
            after = [v for s in mine for v in s.after_answer_ms]
            cpu = {
                who: statistics.median(s.cpu[who] for s in mine)
                for who in (subject, "receiver", "generator", "machine")
            }
            lines += [
                f"{rate:g}/s {subject}: pay answered p50"
                f" {statistics.median(s.answer_ms_p50 for s in mine):.1f} ms; webhook after the"
                f" answer p50 {slices.median(after):.1f} / p99 {slices.percentile(after, 0.99):.1f}"
                " ms; each slice's webhook p50 "
                + ", ".join(f"{slices.median(s.latencies_ms):.1f}" for s in mine)
                + " ms",
                f"    CPU, % of a core: {subject} {cpu[subject]:.0f}, receiver"
                f" {cpu['receiver']:.0f}, generator {cpu['generator']:.0f} (late by up to"
                f" {max(s.lag_ms_max for s in mine):.1f} ms); machine busy"
                f" {cpu['machine']:.0f}% of all cores",
            ]
    lines.append("")
    trouble = figures["latency_not_zero_answers"] + figures["latency_missing_webhooks"]
    if trouble:
        lines.append(
            f"not answered 0: {figures['latency_not_zero_answers']},"
            f" webhooks that never came: {figures['latency_missing_webhooks']}"
        )
    lines.append(f"gateway peak RSS: {measurement.gateway_peak_rss_mb:.0f} MB")
    if measurement.profiles:
        lines.append("(the gateway was profiled: its figures include py-spy's sampling)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="pay → webhook latency, gateway against floor")
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument(
        "--seconds", type=float, default=9.0, help="load per side and rate (default 9)"
    )
    parser.add_argument("--slices", type=int, default=3, help="slices per side and rate")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on the gateway during its slices"
    )
    parser.add_argument(
        "--dump", type=Path, help="write every payment's send time and latency here (JSON)"
    )
    args = parser.parse_args()
    if args.slices < 1 or args.seconds <= 0 or any(rate <= 0 for rate in args.rates):
        parser.error("--slices, --seconds and --rates must be positive")
    profile_dir = slices.default_profile_dir() if args.profile else None
    measurement = asyncio.run(measure(args.rates, args.seconds, args.slices, profile_dir))
    print("\n".join(describe(measurement)))
    if args.dump is not None:
        args.dump.write_text(
            json.dumps(
                [
                    {**s.summary(), "latencies_ms": s.latencies_ms, "sent_at": s.sent_at}
                    for s in measurement.slices
                ]
            )
        )
        print(f"latencies: {args.dump}")
    for rate, collapsed in measurement.profiles.items():
        print(f"\nprofile of the gateway at {rate:g}/s (py-spy, gateway slices only):")
        print(f"  speedscope: {slices.speedscope_file(collapsed)}")
        print(f"  collapsed stacks (flamegraph.pl, speedscope): {collapsed}")
        print("\n".join("  " + line for line in slices.top_functions(collapsed)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
