"""deploy/prometheus/alerts.yml: every metric it names is one the gateway exports, and
promtool accepts the rules and passes their unit tests (alerts.test.yml), which `make lint`
also runs. promtool comes from Debian's prometheus package (`make lint` unpacks it into the
venv); without it those two tests skip and say so."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.metrics_core import Metric

from qiwi_gw.metrics import DatabaseGauges, Metrics
from tests.support.rows import add_payment

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exported_names() -> set[str]:
    families: list[Metric] = list(Metrics().registry.collect())
    return {
        family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_every_metric_an_alert_names_is_exported() -> None:
    named = set(re.findall(r"\bqiwi_[a-z_]+\b", RULES.read_text()))
    assert named, "no qiwi_ metric in the rules"
    assert named <= exported_names(), named - exported_names()


def test_the_four_recommended_alerts_are_there() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), flags=re.MULTILINE))
    assert {
        "QiwiGwWebhookBacklogGrowing",
        "QiwiGwListenerDown",
        "QiwiGwTellingQiwiToRetry",
        "QiwiGwDatabaseDown",
    } <= alerts
    tested = set(re.findall(r"alertname: (\w+)$", RULE_TESTS.read_text(), flags=re.MULTILINE))
    assert tested == alerts, "every alert has a unit test"


def promtool() -> str:
    found = Path(sys.executable).parent / "promtool"
    if found.is_file():
        return str(found)
    on_path = shutil.which("promtool")
    if on_path is None:
        pytest.skip("promtool is missing: `make lint` unpacks it from Debian's prometheus package")
    return on_path


@pytest.mark.parametrize(
    "args", [("check", "rules", str(RULES)), ("test", "rules", str(RULE_TESTS))]
)
def test_promtool_accepts_the_rules(args: tuple[str, ...]) -> None:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_retry_counter_exists_at_zero_before_any_request() -> None:
    """increase() and rate() see a counter's first increment only from a sample before it:
    a series born at 1 hides the one result 1 of a quiet gateway from the retry alert."""
    samples = {
        (sample.name, sample.labels.get("command"), sample.labels.get("result")): sample.value
        for family in Metrics().registry.collect()
        for sample in family.samples
    }
    for command in ("pay", "check"):
        for result in ("0", "1"):
            assert samples[("qiwi_requests_total", command, result)] == 0


async def test_the_backlog_gauges_keep_their_values_and_database_up_is_0_while_it_is_down(
    database_dsn: str,
) -> None:
    """What the backlog alert's second case relies on (alerts.yml): while no read reaches
    the table, qiwi_database_up is 0 and the pending gauges stay as they were."""
    add_payment(database_dsn, "77", delivered_ago=None, attempts=0, created_ago="3 minutes")
    metrics = Metrics()
    now = 0.0
    reachable = True

    async def connect() -> asyncpg.Connection:
        if not reachable:
            raise OSError("connection refused")
        connection: asyncpg.Connection = await asyncpg.connect(database_dsn)
        return connection

    gauges = DatabaseGauges(metrics, connect, clock=lambda: now)
    await gauges.refresh()
    before = (
        value(metrics, "qiwi_pending_payments"),
        value(metrics, "qiwi_oldest_pending_seconds"),
    )
    assert value(metrics, "qiwi_database_up") == 1
    assert before[0] == 1
    assert before[1] >= 180

    await gauges.close()
    reachable = False
    now += 60
    await gauges.refresh()
    assert value(metrics, "qiwi_database_up") == 0
    assert value(metrics, "qiwi_pending_payments") == before[0]
    assert value(metrics, "qiwi_oldest_pending_seconds") == before[1]


def value(metrics: Metrics, name: str) -> float:
    found = metrics.registry.get_sample_value(name)
    assert found is not None, name
    return found
