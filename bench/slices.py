"""Pay → webhook latency of the gateway against the floor (bench/floor.py), in alternating
slices: gateway, floor, gateway, floor... at each rate, so that whatever else the
machine is doing meanwhile falls on both alike.

Four kinds of process, each its own: the load generator (bench/loadgen.py, a new one
per slice, open loop, a fresh range of txn_ids each time), the gateway, the floor (each
on a database of its own) and one receiver (bench/receiver.py) that both send to. A
payment's latency is its webhook's arrival at the receiver minus its pay's send time,
both ``time.monotonic()``, CLOCK_MONOTONIC, which every process on the machine shares.
A subject's p50 / p99 at a rate are over the payments of all its slices at that rate.

With a profile directory, py-spy samples the gateway during its slices only (never
while the floor is measured) and each rate's samples land in one collapsed-stack file
and one speedscope file there.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.processes import ROOT, Process, bench_module, gateway, peak_rss_mb

GATEWAY = "gateway"
FLOOR = "floor"
SUBJECTS = (GATEWAY, FLOOR)
# Targets of issue 11, as ratios to the floor.
P50_TARGET = 1.5
P99_TARGET = 2.0
# Each slice's txn_ids start at a new multiple of this: ranges never overlap.
RANGE = 10_000_000
WARM_UP_SECONDS = 1.0
WEBHOOK_WAIT = 60.0


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median(values: Sequence[float]) -> float:
    """NaN for no values: a slice whose webhooks all went missing still reports."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Slice:
    subject: str
    rate: float
    seconds: float
    number: int
    first_txn: int
    latencies_ms: list[float]
    # Each payment's send time (monotonic), in the order of latencies_ms.
    sent_at: list[float]
    # Pays answered other than 0 (by kind), and webhooks that never came.
    not_zero: dict[str, int]
    missing: int
    answer_ms_p50: float
    answer_ms_p99: float
    # Webhook arrival minus the pay's answer, per payment: the path after the commit
    # (NOTIFY to POST), apart from the pay's own (to the commit and the answer).
    after_answer_ms: list[float]
    lag_ms_max: float
    # CPU over the slice, % of one core (the machine's: % of all its cores), to tell
    # a slow path from a machine with no core left to run it.
    cpu: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "rate": self.rate,
            "seconds": self.seconds,
            "slice": self.number,
            "payments": len(self.latencies_ms),
            "p50_ms": median(self.latencies_ms),
            "p99_ms": percentile(self.latencies_ms, 0.99),
            "not_zero": self.not_zero,
            "missing_webhooks": self.missing,
            "answer_ms_p50": self.answer_ms_p50,
            "answer_ms_p99": self.answer_ms_p99,
            "after_answer_ms_p50": median(self.after_answer_ms),
            "after_answer_ms_p99": percentile(self.after_answer_ms, 0.99),
            "generator_lag_ms_max": self.lag_ms_max,
            "cpu_percent": self.cpu,
        }


@dataclass
class Measurement:
    rates: list[float]
    slices: list[Slice] = field(default_factory=list)
    gateway_peak_rss_mb: float = float("nan")
    profiles: dict[float, Path] = field(default_factory=dict)

    def latencies(self, subject: str, rate: float) -> list[float]:
        return [
            value
            for one in self.slices
            if one.subject == subject and one.rate == rate
            for value in one.latencies_ms
        ]

    def figures(self) -> dict[str, Any]:
        """Flat numbers (for medians over runs) and each slice's summary."""
        figures: dict[str, Any] = {}
        for rate in self.rates:
            at = f"at_{rate:g}"
            for subject in SUBJECTS:
                values = self.latencies(subject, rate)
                figures[f"latency_{subject}_p50_ms_{at}"] = median(values)
                figures[f"latency_{subject}_p99_ms_{at}"] = percentile(values, 0.99)
            for q in ("p50", "p99"):
                figures[f"latency_{q}_ratio_{at}"] = (
                    figures[f"latency_{GATEWAY}_{q}_ms_{at}"]
                    / figures[f"latency_{FLOOR}_{q}_ms_{at}"]
                )
        figures["gateway_peak_rss_mb_latency"] = self.gateway_peak_rss_mb
        figures["latency_not_zero_answers"] = sum(sum(one.not_zero.values()) for one in self.slices)
        figures["latency_missing_webhooks"] = sum(one.missing for one in self.slices)
        figures["latency_generator_lag_ms_max"] = max(one.lag_ms_max for one in self.slices)
        figures["latency_slices"] = [one.summary() for one in self.slices]
        return figures


def table(
    figures: Mapping[str, Any], rates: Sequence[float], each: Mapping[float, str] | None = None
) -> list[str]:
    """The markdown table: gateway and floor p50 / p99, the ratios against the targets,
    and (``each``) a column of text per rate, e.g. every run's ratios."""
    extra = " each run (p50 / p99 ratio) |" if each else ""
    lines = [
        f"| rate | gateway p50 / p99 | floor p50 / p99 | p50 ratio (≤ {P50_TARGET:g}×) | p99 ratio (≤ {P99_TARGET:g}×) |{extra}",
        "|---|---|---|---|---|" + ("---|" if each else ""),
    ]
    for rate in rates:
        at = f"at_{rate:g}"
        p50 = figures[f"latency_p50_ratio_{at}"]
        p99 = figures[f"latency_p99_ratio_{at}"]
        row = (
            f"| {rate:g}/s"
            f" | {figures[f'latency_gateway_p50_ms_{at}']:.1f} / {figures[f'latency_gateway_p99_ms_{at}']:.1f} ms"
            f" | {figures[f'latency_floor_p50_ms_{at}']:.1f} / {figures[f'latency_floor_p99_ms_{at}']:.1f} ms"
            f" | {p50:.2f}× {'met' if p50 <= P50_TARGET else 'not met'}"
            f" | {p99:.2f}× {'met' if p99 <= P99_TARGET else 'not met'} |"
        )
        if each:
            row += f" {each[rate]} |"
        lines.append(row)
    return lines


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process so far (not its children)."""
    # The command name, in parentheses, may hold spaces: count fields after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


class CpuMeter:
    """CPU used by some processes and by the whole machine between start and stop."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._started = time.monotonic()
        self._process = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        self._machine = machine_jiffies()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._started
        used = {
            name: round(100 * (process_cpu_seconds(pid) - self._process[name]) / wall, 1)
            for name, pid in self._pids.items()
        }
        busy, total = machine_jiffies()
        used["machine"] = round(
            100 * (busy - self._machine[0]) / max(1, total - self._machine[1]), 1
        )
        return used


class TxnIds:
    """Fresh, disjoint txn_id ranges: one per slice, never reused in a measurement."""

    def __init__(self) -> None:
        self._next = RANGE

    def take(self) -> int:
        first = self._next
        self._next += RANGE
        return first


class Profiler:
    """py-spy on the gateway, one recording per gateway slice, merged per rate."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(executable).exists():
            raise RuntimeError("py-spy is not installed: pip install '.[bench]'")
        self.executable = executable
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.parts: dict[float, list[Path]] = {}

    @asynccontextmanager
    async def recording(self, pid: int, rate: float) -> AsyncIterator[None]:
        parts = self.parts.setdefault(rate, [])
        output = self.directory / f"part-{rate:g}-{len(parts)}.txt"
        process = await asyncio.create_subprocess_exec(
            self.executable,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--function",
            # Never stop the gateway to read its stack: its latency is what is measured.
            "--nonblocking",
            "--rate",
            "250",
            "--output",
            str(output),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        said: list[str] = []
        async with asyncio.timeout(30):
            # Sampling has begun once py-spy says so; the slice starts after that.
            while b"Sampling process" not in (line := await process.stdout.readline()):
                if not line:
                    raise RuntimeError("py-spy did not start: " + "".join(said))
                said.append(line.decode(errors="replace"))
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            await process.communicate()
            parts.append(output)

    def merge(self, rate: float) -> Path:
        """One collapsed-stack file (flamegraph.pl, speedscope) and one speedscope JSON;
        the former's path."""
        stacks: Counter[str] = Counter()
        for part in self.parts.get(rate, []):
            if not part.exists():
                continue
            for line in part.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    stacks[stack] += int(count)
            part.unlink()
        collapsed = self.directory / f"gateway-at-{rate:g}.txt"
        collapsed.write_text("".join(f"{s} {n}\n" for s, n in stacks.most_common()))
        speedscope_file(collapsed).write_text(
            json.dumps(_speedscope(stacks, f"qiwi-gw at {rate:g} pays/s"))
        )
        return collapsed


def speedscope_file(collapsed: Path) -> Path:
    return collapsed.with_suffix(".speedscope.json")


def _speedscope(stacks: Counter[str], name: str) -> dict[str, Any]:
    frames: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in stacks.items():
        samples.append([frames.setdefault(frame, len(frames)) for frame in stack.split(";")])
        weights.append(count)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": frame} for frame in frames]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "exporter": "bench/slices.py (from py-spy samples)",
    }


def top_functions(collapsed: Path, count: int = 15) -> list[str]:
    """The functions most samples were in (self) and under (total), as text lines."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        samples = int(number)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            under[frame] += samples
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples; self:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(count)]
    lines.append("total (self and callees):")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in under.most_common(count)]
    return lines


async def run_slice(
    subject: Process,
    name: str,
    receiver: Process,
    rate: float,
    seconds: float,
    first: int,
    number: int,
) -> Slice:
    with tempfile.NamedTemporaryFile(suffix=".json", prefix="qiwi-gw-sent-") as out:
        generator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            "--base",
            subject.base,
            "--rate",
            f"{rate:g}",
            "--seconds",
            f"{seconds:g}",
            "--first",
            str(first),
            "--out",
            out.name,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert generator.stdout is not None
        # CPU is counted from the schedule's start, not the generator's imports.
        await generator.stdout.readline()
        meter = CpuMeter({name: subject.pid, "receiver": receiver.pid})
        await generator.stdout.read()
        if await generator.wait() != 0:
            raise RuntimeError(f"the load generator failed against the {name}")
        sent_report = json.loads(out.read())
    sent: dict[str, float] = sent_report["sent"]
    answered: dict[str, float] = sent_report["answered"]
    expected = [code for code in sent if code not in sent_report["not_zero"]]
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{receiver.base}/wait", json={"codes": expected, "within": WEBHOOK_WAIT}
        ) as response,
    ):
        arrived: dict[str, float] = (await response.json())["arrived"]
    cpu = {**meter.stop(), "generator": sent_report["cpu_percent"]}
    return Slice(
        subject=name,
        rate=rate,
        seconds=seconds,
        number=number,
        first_txn=first,
        latencies_ms=[(arrived[code] - sent[code]) * 1000 for code in arrived],
        sent_at=[sent[code] for code in arrived],
        not_zero=sent_report["not_zero_counts"],
        missing=len(expected) - len(arrived),
        answer_ms_p50=sent_report["answer_ms_p50"],
        answer_ms_p99=sent_report["answer_ms_p99"],
        after_answer_ms=[
            (arrived[code] - answered[code]) * 1000 for code in arrived if code in answered
        ],
        lag_ms_max=sent_report["lag_ms_max"],
        cpu=cpu,
    )


async def measure(
    gateway_dsn: str,
    floor_dsn: str,
    rates: Sequence[float],
    seconds: float,
    slices: int,
    profile_dir: Path | None = None,
    progress: bool = False,
) -> Measurement:
    """``seconds`` of load per side and rate, in ``slices`` slices each."""
    measurement = Measurement(rates=list(rates))
    profiler = Profiler(profile_dir) if profile_dir is not None else None
    txn_ids = TxnIds()
    async with AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(bench_module("receiver"))
        hook = f"{receiver.base}/hook"
        subjects = {
            GATEWAY: await stack.enter_async_context(gateway(gateway_dsn, hook)),
            FLOOR: await stack.enter_async_context(
                bench_module("floor", "--dsn", floor_dsn, "--webhook", hook)
            ),
        }
        for rate in rates:
            # Warm-up at the rate itself, not counted: pools grow (the gateway's opens
            # connections as it needs them), caches fill, before the first slice counts.
            for name, subject in subjects.items():
                await run_slice(subject, name, receiver, rate, WARM_UP_SECONDS, txn_ids.take(), -1)
            for number in range(slices):
                for name, subject in subjects.items():
                    started = time.monotonic()
                    async with AsyncExitStack() as profiling:
                        if profiler is not None and name == GATEWAY:
                            await profiling.enter_async_context(
                                profiler.recording(subject.pid, rate)
                            )
                        one = await run_slice(
                            subject, name, receiver, rate, seconds / slices, txn_ids.take(), number
                        )
                    measurement.slices.append(one)
                    if progress:
                        summary = one.summary()
                        print(
                            f"  {rate:g}/s {name} slice {number + 1}/{slices}:"
                            f" p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms"
                            f" ({summary['payments']} payments, {time.monotonic() - started:.1f} s)",
                            file=sys.stderr,
                        )
            if profiler is not None:
                measurement.profiles[rate] = profiler.merge(rate)
        measurement.gateway_peak_rss_mb = peak_rss_mb(subjects[GATEWAY].pid)
    return measurement


def default_profile_dir() -> Path:
    return (
        Path(tempfile.gettempdir())
        / f"qiwi-gw-profile-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    )
