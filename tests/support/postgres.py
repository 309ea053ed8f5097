"""PostgreSQL servers of a test's own, in a temporary directory on a free port: a primary
(with password authentication when asked) and streaming replicas of it (pg_basebackup -R).

The machine's shared server is never touched. The binaries are pgserver's (a dependency,
so always at hand), else the system's; ``binaries()`` says which, or None.
``disposable_postgres()`` is a cluster's primary, migrated, that a chaos scenario stops
and starts.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from aiohttp.test_utils import unused_port

from qiwi_gw import migrations

COMMAND_TIMEOUT = 60
SUPERUSER = "postgres"


def binaries() -> Path | None:
    """A directory with initdb, pg_ctl and pg_basebackup, or None."""
    candidates: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs on XDG_RUNTIME_DIR, as in conftest
        try:
            from pgserver._commands import POSTGRES_BIN_PATH

            candidates.append(Path(POSTGRES_BIN_PATH))
        except ImportError:
            pass
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return directory
    return None


class Server:
    """One PostgreSQL data directory and the port it listens on (127.0.0.1 only)."""

    def __init__(self, bin_dir: Path, pgdata: Path, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.pgdata = pgdata
        self.run_as = run_as
        self.port = unused_port()
        self.password: str | None = None

    def dsn(self, database: str = "postgres", password: str | None = None) -> str:
        secret = password if password is not None else self.password
        credentials = SUPERUSER if secret is None else f"{SUPERUSER}:{quote(secret, safe='')}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, tool: str, *args: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.password or ""}
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            user=self.run_as,
            env=env,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {result.stderr.strip()}")

    def start(self) -> None:
        self.run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            str(COMMAND_TIMEOUT),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop")


class Cluster:
    """A primary and its replicas under one temporary directory."""

    def __init__(self, bin_dir: Path, directory: Path) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.run_as: str | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; pgserver keeps a user for this.
            from pgserver.utils import ensure_user_exists

            ensure_user_exists("pgserver")
            self.run_as = "pgserver"
            account = pwd.getpwnam("pgserver")
            os.chown(directory, account.pw_uid, account.pw_gid)
        self.servers: list[Server] = []

    def primary(self, password: str | None = None) -> Server:
        server = Server(self.bin_dir, self.directory / "primary", self.run_as)
        args = ["-D", str(server.pgdata), "-U", SUPERUSER, "-E", "utf8", "--auth-local=trust"]
        if password is None:
            args.append("--auth-host=trust")
        else:
            pwfile = self.directory / "pwfile"
            pwfile.write_text(password + "\n")
            if self.run_as is not None:
                shutil.chown(pwfile, self.run_as)
            args += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        server.run("initdb", *args)
        server.start()
        server.password = password
        self.servers.append(server)
        return server

    def replica(self, primary: Server) -> Server:
        """A hot standby streaming from ``primary``, started."""
        server = Server(self.bin_dir, self.directory / f"replica{len(self.servers)}", self.run_as)
        server.password = primary.password
        server.run(
            "pg_basebackup",
            "-D",
            str(server.pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-X",
            "stream",
            "--checkpoint=fast",  # not the primary's spread checkpoint: seconds, not minutes
            "-R",  # standby.signal and primary_conninfo: a streaming replica
        )
        server.start()
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")


@contextmanager
def cluster() -> Iterator[Cluster]:
    bin_dir = binaries()
    if bin_dir is None:
        import pytest

        pytest.skip("no PostgreSQL binaries with pg_basebackup (pgserver or postgresql-NN)")
    with tempfile.TemporaryDirectory(prefix="qiwi-gw-own-pg-") as directory:
        own = Cluster(bin_dir, Path(directory))
        try:
            yield own
        finally:
            own.stop_all()


@contextmanager
def disposable_postgres() -> Iterator[Server]:
    """One migrated primary of the test's own, which a chaos scenario stops and starts."""
    with cluster() as own:
        server = own.primary()
        migrations.apply(server.dsn(), "public")
        yield server
