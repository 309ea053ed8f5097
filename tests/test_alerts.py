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

import pytest
from prometheus_client.metrics_core import Metric

from qiwi_gw.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
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
