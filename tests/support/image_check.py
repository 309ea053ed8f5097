"""``make image-check``: build the Dockerfile and run the built image's file system as the
image's USER, the way a container runtime would start it.

    .venv/bin/python -m tests.support.image_check

Podman builds the Dockerfile (``--isolation=chroot``: no daemon, no nested namespaces). The
official python base cannot be pulled everywhere, so when no image by the Dockerfile's FROM
name is present a stand-in is made from Debian's packages (docker/standin-base.sh, cached).
Container runtimes cannot set rlimits in some sandboxes (this one among them), so the image is
not run by podman: its file system is (``podman create`` + ``podman mount``), under ``chroot``
with /proc and /dev bound, as the image's numeric USER, with the image's environment, working
directory and entry point. The checks:

1. the embedded database asked for (QIWI_EMBEDDED_DB=true): PostgreSQL in QIWI_DATA_DIR, the
   first log line says it is not for production, a pay answered 0 on the default port 80 by a
   process of the image's user; no database configured and none asked for: exit 2, one line;
2. PG_HOST to a PostgreSQL of this check's own (password authentication), the password and
   the port exported by a mounted /opt/setup.sh, the database missing and so created: a pay
   answered 0 on that port, and the HEALTHCHECK (which sees only the image's PORT=80) finds it;
3. the HEALTHCHECK command exits 0 while the gateway serves and 1 once it has stopped;
4. ``migrate`` (``docker run IMAGE migrate``) on a missing database: created, migrated, exit 0.

It prints the image's size. Where podman cannot be installed or run (not root, no podman), it
says so in one line and exits 0: CI machines differ, and the unit tests do not depend on it.
"""

# podman, mount, umount and chroot are the system's, found on PATH as make finds them.
# ruff: noqa: S607

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.postgres import Cluster, Server, binaries

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/qiwi-gw:image-check"
BUILD_TIMEOUT = 1200
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 40.0
COMMAND_TIMEOUT = 120
PAY = "command=pay&txn_id={txn}&txn_date=20261130120000&account=image-check&sum=10.00"


class CheckFailedError(Exception):
    """A check did not hold; the message says which and what was seen."""


def say(message: str) -> None:
    print(f"image-check: {message}", flush=True)


# --- podman -------------------------------------------------------------------


def podman(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise CheckFailedError(f"podman {' '.join(args[:2])}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def why_it_cannot_run() -> str | None:
    """None when podman can build and this process can chroot; else the reason."""
    if os.geteuid() != 0:
        return "not root: chroot and podman's storage need root (CI runs as root)"
    if shutil.which("podman") is None:
        return "podman is not installed and could not be (a Debian machine with apt-get)"
    probe = subprocess.run(
        ["podman", "info", "--format", "{{.Store.GraphDriverName}}"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"podman cannot run here: {reason}"
    return None


def base_images() -> list[str]:
    return sorted(
        set(re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    )


def ensure_base(name: str) -> str:
    """The base image by the Dockerfile's name: present, or a stand-in made (and cached)."""
    qualified = name if "/" in name.split(":")[0] else f"docker.io/library/{name}"
    exists = subprocess.run(
        ["podman", "image", "exists", qualified], timeout=COMMAND_TIMEOUT, check=False
    )
    if exists.returncode == 0:
        return f"{name}: present"
    started = time.monotonic()
    subprocess.run(
        [str(ROOT / "docker" / "standin-base.sh"), qualified],
        check=True,
        timeout=BUILD_TIMEOUT,
    )
    return f"{name}: stand-in from Debian's packages ({time.monotonic() - started:.0f} s)"


def build() -> float:
    started = time.monotonic()
    # --format docker keeps HEALTHCHECK (the OCI format has no such field).
    podman(
        "build",
        "--isolation=chroot",
        "--pull=never",
        "--format=docker",
        "--tag",
        TAG,
        str(ROOT),
        timeout=BUILD_TIMEOUT,
    )
    return time.monotonic() - started


# --- the image's file system, run as its user ----------------------------------


@dataclass(frozen=True)
class Image:
    root: Path
    user: str
    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]

    def command(self, args: Sequence[str], env: dict[str, str]) -> list[str]:
        """What a runtime would exec: the entry point with ``args``, as the image's user,
        with the image's environment plus ``env`` (as ``docker run -e``)."""
        pairs = [f"{name}={value}" for name, value in {**self.env, **env}.items()]
        return [
            "chroot",
            f"--userspec={self.user}",
            str(self.root),
            "/usr/bin/env",
            "-i",
            f"--chdir={self.workdir}",
            *pairs,
            *args,
        ]

    def start(self, args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.command([*self.entrypoint, *args], env), stdout=out, stderr=out
            )

    def run(self, args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(args, env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def healthcheck_exit_code(self, env: dict[str, str]) -> int:
        if not self.healthcheck or self.healthcheck[0] != "CMD":
            raise CheckFailedError(f"HEALTHCHECK is {self.healthcheck}, expected CMD [...]")
        return self.run(self.healthcheck[1:], env).returncode


@contextmanager
def mounted_image() -> Iterator[Image]:
    inspected = json.loads(podman("image", "inspect", TAG))[0]
    config = inspected["Config"]
    # Podman reports the Docker-format HEALTHCHECK beside the config, not in it.
    healthcheck = (inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test")
    container = podman("create", TAG).strip()
    mounts: list[Path] = []
    try:
        root = Path(podman("mount", container).strip())
        for name, option in (("proc", "--bind"), ("dev", "--rbind")):
            subprocess.run(["mount", option, f"/{name}", str(root / name)], check=True)
            mounts.append(root / name)
        env = dict(item.split("=", 1) for item in config.get("Env", []))
        env.setdefault("HOME", config.get("WorkingDir") or "/")
        yield Image(
            root=root,
            user=config.get("User") or "0:0",
            env=env,
            workdir=config.get("WorkingDir") or "/",
            entrypoint=config.get("Entrypoint") or [],
            cmd=config.get("Cmd") or [],
            healthcheck=healthcheck or [],
        )
    finally:
        if mounts:
            kill_processes_under(mounts[0].parent)
        for mount in reversed(mounts):
            subprocess.run(["umount", "-R", "--lazy", str(mount)], check=False)
        subprocess.run(["podman", "umount", container], capture_output=True, check=False)
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)


def kill_processes_under(root: Path) -> None:
    """Whatever still runs inside the image's root (an embedded PostgreSQL left behind by a
    failed check) would keep its file system busy."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if Path(os.readlink(entry / "root")) == root:
                os.kill(int(entry.name), signal.SIGKILL)


# --- talking to the gateway -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - what the gateway will bind
        except OSError:
            return False
        return True


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http://127.0.0.1
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailedError(f"the gateway exited with {process.returncode}:\n{tail(log)}")
        with suppress(OSError):
            if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        time.sleep(0.2)  # another process's start: there is no event to wait on
    raise CheckFailedError(f"not ready on port {port} in {READY_TIMEOUT:.0f} s:\n{tail(log)}")


def pay(port: int) -> str:
    txn = str(int(time.time() * 1000))
    status, body = get(f"http://127.0.0.1:{port}/payment?{PAY.format(txn=txn)}")
    found = re.search(r"<result>(\d+)</result>", body)
    if status != 200 or found is None:
        raise CheckFailedError(f"pay: HTTP {status}: {body[:300]}")
    return found.group(1)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise CheckFailedError(f"did not stop on SIGTERM within {STOP_TIMEOUT:.0f} s") from None


def uid_of(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^Uid:\s+(\d+)", status, flags=re.MULTILINE)
    return found.group(1) if found else "?"


def tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailedError(message)


# --- the checks -------------------------------------------------------------------


def check_no_database(image: Image) -> str:
    result = image.run([*image.entrypoint, "serve"], {})
    lines = result.stderr.strip().splitlines()
    expect(result.returncode == 2, f"exit {result.returncode}, expected 2: {result.stderr}")
    expect(len(lines) == 1, f"expected one line, got:\n{result.stderr}")
    expect("PG_HOST" in lines[0] and "DATABASE_URL" in lines[0], f"the line: {lines[0]}")
    return f"no database configured, none asked for: exit 2, {lines[0]!r}"


def check_embedded_port_80_and_healthcheck(image: Image, work: Path) -> list[str]:
    if not port_is_free(80):
        raise CheckFailedError("port 80 is taken on this machine: the default port cannot be tried")
    env = {"QIWI_EMBEDDED_DB": "true"}  # nothing else: the image's own PORT, HOST, data dir
    log = work / "embedded.log"
    process = image.start(image.cmd, env, log)
    try:
        wait_ready(process, 80, log)
        answer = pay(80)
        expect(answer == "0", f"pay answered {answer} on the embedded database")
        uid = uid_of(process.pid)
        expect(uid == image.user.split(":")[0], f"the gateway runs as uid {uid}")
        healthy = image.healthcheck_exit_code(env)
    finally:
        code = stop(process)
    expect(code == 0, f"exit {code} on SIGTERM:\n{tail(log)}")
    data_dir = image.env["QIWI_DATA_DIR"]
    first = log.read_text().splitlines()[0]
    expect(
        "not for production" in first and f"{data_dir}/pgdata" in first,
        f"the first log line does not warn: {first}",
    )
    pgdata = image.root / data_dir.lstrip("/") / "pgdata"
    expect((pgdata / "PG_VERSION").is_file(), f"no PostgreSQL data in {data_dir}/pgdata")
    owner = pgdata.stat().st_uid
    stopped = image.healthcheck_exit_code(env)
    expect((healthy, stopped) == (0, 1), f"HEALTHCHECK exited {healthy} serving, {stopped} not")
    return [
        f"embedded database asked for: data in {data_dir}/pgdata (uid {owner}), first log line "
        f"warns; a pay answered 0 on port 80 by uid {uid}",
        "HEALTHCHECK: exit 0 while serving, 1 once stopped",
    ]


def check_pg_host_with_setup_hook(image: Image, server: Server, work: Path) -> str:
    database = f"qiwi_image_{secrets.token_hex(4)}"
    hook = image.root / "opt" / "setup.sh"
    port = free_port()
    hook.write_text(f"export PG_PASSWORD='{server.password}' PORT={port}\n")
    hook.chmod(0o644)  # not executable: sourced, so its exports reach the gateway
    env = {
        "PG_HOST": "127.0.0.1",
        "PG_PORT": str(server.port),
        "PG_USER": "postgres",
        "PG_DATABASE": database,
        "HOST": "127.0.0.1",
    }
    log = work / "pg_host.log"
    process = image.start(image.cmd, env, log)
    try:
        wait_ready(process, port, log)
        answer = pay(port)
        # Run as a runtime runs it: the image's environment (PORT=80) and `-e`, not the hook's.
        healthy = image.healthcheck_exit_code(env)
    finally:
        code = stop(process)
        hook.unlink()
    expect(answer == "0", f"pay answered {answer} on PG_HOST")
    expect(healthy == 0, f"HEALTHCHECK exited {healthy}: it did not follow the hook's PORT")
    expect(code == 0, f"exit {code} on SIGTERM:\n{tail(log)}")
    with psycopg.connect(server.dsn(database)) as connection:
        row = connection.execute("SELECT count(*) FROM qiwi_transaction").fetchone()
    expect(row == (1,), f"the payment is not in {database}: {row}")
    return (
        f"PG_HOST, password and PORT from a sourced /opt/setup.sh, {database} created: a pay "
        f"answered 0 on port {port}, and the HEALTHCHECK found it there"
    )


def check_migrate(image: Image, server: Server) -> str:
    database = f"qiwi_image_{secrets.token_hex(4)}"
    env = {
        "PG_HOST": "127.0.0.1",
        "PG_PORT": str(server.port),
        "PG_USER": "postgres",
        "PG_PASSWORD": server.password or "",
        "PG_DATABASE": database,
    }
    result = image.run([*image.entrypoint, "migrate"], env)
    expect(result.returncode == 0, f"migrate exited {result.returncode}: {result.stderr}")
    expect(result.stdout.startswith("applied "), f"migrate said: {result.stdout}")
    return f"migrate on a missing database: exit 0, {result.stdout.strip()}"


def run_checks(work: Path) -> None:
    bin_dir = binaries()
    if bin_dir is None:
        raise CheckFailedError("no PostgreSQL binaries for the PG_HOST check (pgserver)")
    own = Cluster(bin_dir, work)
    try:
        server = own.primary(password=secrets.token_urlsafe(12))
        with mounted_image() as image:
            results = [check_no_database(image)]
            results += check_embedded_port_80_and_healthcheck(image, work)
            results.append(check_pg_host_with_setup_hook(image, server, work))
            results.append(check_migrate(image, server))
    finally:
        own.stop_all()
    for line in results:
        say(f"ok  {line}")


def main() -> int:
    reason = why_it_cannot_run()
    if reason is not None:
        say(f"skipped: {reason}")
        return 0
    try:
        for name in base_images():
            say(f"base {ensure_base(name)}")
        say(f"built {TAG} in {build():.0f} s")
        work = Path(tempfile.mkdtemp(prefix="qiwi-gw-image-check-"))
        try:
            run_checks(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).strip())
        say(f"image {TAG}: {size / 1_000_000:.0f} MB")
    except (CheckFailedError, subprocess.SubprocessError, OSError) as error:
        say(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
