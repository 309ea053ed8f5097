"""Drop-in parity with the original image's start: a missing database is created (through
the direct connection) and migrated; replicas starting together both come up; a role that
may not create databases stops the gateway with one line (exit 2); any other connection
failure is retried with the server's own reason in every log line, the password masked.
Where the embedded database is used, the first log line says so; where it is refused
(QIWI_EMBEDDED_DB=false) and no database is set, the gateway stops at once (exit 2)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import unused_port
from psycopg import sql

from qiwi_gw import migrations, provision, server
from qiwi_gw.errors import ConfigError, DatabaseUnavailableError
from qiwi_gw.provision import connection_problem
from qiwi_gw.settings import DatabaseSettings, Settings
from tests.support.backend import Backend
from tests.support.cli import run_process
from tests.support.database import drop_database, with_database
from tests.support.gateway import Gateway
from tests.support.postgres import cluster
from tests.support.qiwi import Qiwi
from tests.support.rows import execute

WRONG_PASSWORD = "not-the-password-7"


def with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@pytest.fixture
def missing_database(server_dsn: str) -> Iterator[str]:
    """The DSN of a database the server does not have (dropped afterwards, if created)."""
    name = f"qiwi_gw_new_{secrets.token_hex(5)}"
    try:
        yield with_database(server_dsn, name)
    finally:
        drop_database(server_dsn, name)


async def pay_answer(base: str, txn: str) -> str:
    async with aiohttp.ClientSession() as session:
        answer = await Qiwi().pay(session, base, txn)
    assert answer is not None
    return answer.result


async def test_missing_database_is_created_migrated_and_serves(missing_database: str) -> None:
    async with Backend() as hook:
        gateway = Gateway(missing_database, hook.url)
        await gateway.start()
        try:
            assert await pay_answer(gateway.base, "501") == "0"
        finally:
            assert await gateway.terminate() == 0
    log = gateway.log_text()
    name = urlsplit(missing_database).path.lstrip("/")
    assert f'database "{name}" does not exist on ' in log
    assert f'created database "{name}"' in log
    assert "retrying" not in log
    assert execute(missing_database, "SELECT count(*) FROM qiwi_transaction") == [(1,)]


@pytest.mark.parametrize("name", ["qiwi gw With Space", "qiwi'gw\"quote; ü"])
async def test_a_name_that_needs_url_escapes_is_created_migrated_and_serves(
    server_dsn: str, name: str
) -> None:
    """PG_DATABASE goes into the DSN %-escaped: every driver must read it back unescaped,
    or the database is created and then never reached."""
    dsn = with_database(server_dsn, quote(name, safe=""))
    try:
        async with Backend() as hook:
            gateway = Gateway(dsn, hook.url)
            await gateway.start()
            try:
                assert await pay_answer(gateway.base, "701") == "0"
            finally:
                assert await gateway.terminate() == 0
        assert "retrying" not in gateway.log_text()
        assert execute(dsn, "SELECT current_database(), count(*) FROM qiwi_transaction") == [
            (name, 1)
        ]
    finally:
        drop_database(server_dsn, name)


async def test_two_gateways_starting_on_a_missing_database_both_serve(
    missing_database: str,
) -> None:
    async with Backend() as hook:
        gateways = [Gateway(missing_database, hook.url) for _ in range(2)]
        try:
            await asyncio.gather(*(gateway.start() for gateway in gateways))
            answers = [await pay_answer(g.base, str(600 + i)) for i, g in enumerate(gateways)]
            assert answers == ["0", "0"]
        finally:
            codes = [await gateway.terminate() for gateway in gateways if gateway.process]
    assert codes == [0, 0]
    name = urlsplit(missing_database).path.lstrip("/")
    creators = [g for g in gateways if f'created database "{name}"' in g.log_text()]
    assert len(creators) == 1, [g.log_text() for g in gateways]
    assert execute(missing_database, "SELECT count(*) FROM qiwi_transaction") == [(2,)]


def test_creating_a_database_another_process_just_created_is_no_error(
    server_dsn: str, database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The race between replicas, made certain: the database appears between the check
    and CREATE DATABASE."""
    caplog.set_level(logging.INFO, logger="qiwi_gw.provision")
    name = urlsplit(database_dsn).path.lstrip("/")
    with psycopg.connect(server_dsn, autocommit=True) as connection:
        assert provision.create(connection, name) is False
    assert f'database "{name}" was created meanwhile by another process' in caplog.text


def test_an_existing_database_is_left_alone(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qiwi_gw.provision")
    assert provision.create_if_missing(database_dsn) is True
    assert caplog.text == ""


def test_migrate_finds_the_database_another_process_created_meanwhile(
    missing_database: str, server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race between replicas, made certain: told the database does not exist, this one
    goes to create it, and another replica has done so a moment before. It migrates."""
    name = urlsplit(missing_database).path.lstrip("/")
    create = provision.create_if_missing

    def another_replica_first(dsn: str) -> bool:
        with psycopg.connect(server_dsn, autocommit=True) as rival:
            rival.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return create(dsn)

    monkeypatch.setattr(provision, "create_if_missing", another_replica_first)
    assert server.migrate(missing_database, "public") == migrations.expected_ids()


class ReleaseWhenBusy(logging.Handler):
    """Closes ``holder`` (a session on template1) once the gateway says it is in the way."""

    def __init__(self, holder: psycopg.Connection[tuple[object, ...]]) -> None:
        super().__init__()
        self.holder = holder
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "not created yet" in record.getMessage():
            self.seen.append(record.getMessage())
            self.holder.close()


def test_creating_waits_while_another_session_is_on_the_template() -> None:
    """CREATE DATABASE copies template1 and refuses while another session is connected to
    it (another replica's maintenance session): the gateway tries again, and migrates."""
    with cluster() as own:
        primary = own.primary()
        holder = psycopg.connect(primary.dsn("template1"), autocommit=True)
        release = ReleaseWhenBusy(holder)
        release.setLevel(logging.WARNING)
        logging.getLogger("qiwi_gw.provision").addHandler(release)
        try:
            applied = server.migrate(primary.dsn("qiwi_busy"), "public")
        finally:
            logging.getLogger("qiwi_gw.provision").removeHandler(release)
            holder.close()
    assert applied == migrations.expected_ids()
    assert len(release.seen) == 1
    assert 'database "qiwi_busy" not created yet: ' in release.seen[0]
    assert '"template1" is being accessed by other users' in release.seen[0]


@pytest.mark.timeout(180)
def test_a_template_held_throughout_ends_the_tries_with_one_line() -> None:
    """Not a race but a session left on template1 (an administrator's psql): a few tries,
    then the failure says why, instead of trying forever."""
    with cluster() as own:
        primary = own.primary()
        with (
            psycopg.connect(primary.dsn("template1"), autocommit=True),
            pytest.raises(DatabaseUnavailableError) as caught,
        ):
            server.migrate(primary.dsn("qiwi_held"), "public")
    assert str(caught.value) == (
        f"cannot migrate {primary.dsn('qiwi_held')}: the database does not exist after "
        f"{server.CREATE_ATTEMPTS} tries to create it: another session stayed connected to "
        "its template"
    )


async def run_together(count: int, *args: str, env: dict[str, str]) -> list[tuple[int, str]]:
    """``python -m qiwi_gw ARGS`` ``count`` times at once; each one's exit code and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_"))}
    clean.pop("DATABASE_URL", None)

    async def one() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qiwi_gw",
            *args,
            env={**clean, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, err.decode()

    async with asyncio.timeout(120):
        return await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("maintenance", ["postgres", "template1"])
async def test_migrates_started_together_on_a_missing_database_all_succeed(
    maintenance: str,
) -> None:
    """Six `migrate`s at once on a missing database (a rollout's init containers): one
    creates it, the others find it. Where the role may connect to template1 only, each
    one's session there makes the others' CREATE DATABASE (a copy of template1) fail."""
    with cluster() as own:
        primary = own.primary()
        execute(primary.dsn(), "CREATE ROLE creator LOGIN CREATEDB")
        if maintenance == "template1":
            execute(primary.dsn(), "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
        dsn = with_user(primary.dsn("qiwi_race"), "creator")
        results = await run_together(6, "migrate", env={"DATABASE_URL": dsn})
        tables = execute(primary.dsn("qiwi_race"), "SELECT count(*) FROM qiwi_transaction")
    assert [code for code, _ in results] == [0] * 6, [err for _, err in results]
    creators = [err for _, err in results if 'created database "qiwi_race"' in err]
    assert len(creators) == 1, [err for _, err in results]
    assert tables == [(0,)]


def test_a_wrong_password_costs_one_failed_login_per_attempt() -> None:
    """Whether the database is missing is asked only when the server says so: a wrong
    password is not tried again on the maintenance databases (lockout policies count)."""
    with cluster() as own:
        primary = own.primary(password="the-right-password-3")
        result = run_process("migrate", env={"DATABASE_URL": primary.dsn(password=WRONG_PASSWORD)})
        log = (primary.pgdata / "log").read_text()
    assert result.returncode == 1, result.stderr
    assert 'password authentication failed for user "postgres"' in result.stderr
    assert log.count("FATAL:  password authentication failed") == 1, log


def test_embedded_database_refused_by_settings_built_directly() -> None:
    settings = Settings(
        database=DatabaseSettings(dsn=None, direct_dsn=None, embedded_allowed=False)
    )
    with pytest.raises(ConfigError, match="QIWI_EMBEDDED_DB is false"), server.database(settings):
        pass


def test_migrate_alone_creates_the_database(missing_database: str) -> None:
    result = run_process("migrate", env={"DATABASE_URL": missing_database})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied ")
    assert "0001.initial-tables" in result.stdout


@pytest.fixture
def role_without_createdb(server_dsn: str) -> Iterator[str]:
    role = f"qiwi_gw_nocreate_{secrets.token_hex(4)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_role_without_createdb_stops_with_one_line(
    missing_database: str, role_without_createdb: str, command: str
) -> None:
    dsn = with_user(missing_database, role_without_createdb)
    name = urlsplit(dsn).path.lstrip("/")
    result = run_process(command, env={"DATABASE_URL": dsn, "PORT": str(unused_port())})
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("qiwi-gw: configuration error: PG_DATABASE: ")
    assert f'database "{name}" does not exist' in last
    assert f'role "{role_without_createdb}" may not create databases' in last
    assert f'ALTER ROLE "{role_without_createdb}" CREATEDB' in last
    assert "Traceback" not in result.stderr
    assert "retrying" not in result.stderr


async def first_retry_line(env: dict[str, str]) -> tuple[str, str]:
    """Start ``serve``; return its first "retrying" log line and everything before it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_"))}
    clean.pop("DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qiwi_gw",
        "serve",
        env={**clean, "PORT": str(unused_port()), **env},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while line := (await process.stderr.readline()).decode():
                seen.append(line)
                if "retrying" in line:
                    return line, "".join(seen)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    raise AssertionError("no retry line:\n" + "".join(seen))


async def test_wrong_password_is_named_in_every_retry_line() -> None:
    with cluster() as own:
        primary = own.primary(password="the-right-password-3")
        dsn = primary.dsn(password=WRONG_PASSWORD)
        line, log = await first_retry_line({"DATABASE_URL": dsn})
    assert 'password authentication failed for user "postgres"' in line
    assert f"postgresql://postgres:***@{primary.where}/postgres" in line
    assert WRONG_PASSWORD not in log


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("qiwi-gw-no-such-host.invalid", "qiwi-gw-no-such-host.invalid"),
        ("127.0.0.1", "Connection refused"),
    ],
)
async def test_unreachable_server_says_why(host: str, reason: str) -> None:
    port = unused_port()
    dsn = f"postgresql://qiwi:{WRONG_PASSWORD}@{host}:{port}/qiwi"
    line, log = await first_retry_line({"DATABASE_URL": dsn})
    assert reason in line
    assert f"postgresql://qiwi:***@{host}:{port}/qiwi not ready: " in line
    assert WRONG_PASSWORD not in log


BAD_ESCAPE_PASSWORD = "p%zzsecret"


def test_a_dsn_libpq_cannot_parse_is_reported_without_its_password() -> None:
    """Settings refuse such a DATABASE_URL; a DSN that reaches migrate anyway (built by
    code) must not have libpq quote its password into the operator's terminal."""
    with pytest.raises(DatabaseUnavailableError) as caught:
        server.migrate(f"postgresql://postgres:{BAD_ESCAPE_PASSWORD}@127.0.0.1:9/x", "public")
    assert "invalid percent-encoded token" in str(caught.value)
    assert "zzsecret" not in str(caught.value)


@pytest.mark.parametrize("command", ["migrate", "serve", "status"])
def test_a_database_url_with_a_bad_escape_stops_in_one_line_without_it(command: str) -> None:
    url = f"postgresql://postgres:{BAD_ESCAPE_PASSWORD}@127.0.0.1:9/x"
    result = run_process(command, env={"DATABASE_URL": url, "PORT": str(unused_port())})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qiwi-gw: configuration error: DATABASE_URL: ")
    assert "zzsecret" not in result.stderr + result.stdout


def test_connection_problem_is_one_line_without_the_password() -> None:
    error = psycopg.OperationalError(
        'connection failed: connection to server at "db", port 5432 failed: FATAL:  '
        'password authentication failed for user "s3cr3t-pw"\n\tand a hint'
    )
    problem = connection_problem(error, "postgresql://u:s3cr3t-pw@db/q")
    assert problem == (
        'connection to server at "db", port 5432 failed: FATAL: '
        'password authentication failed for user "***"'
    )


def test_embedded_database_warns_in_the_first_log_line(tmp_path: Path) -> None:
    result = run_process("migrate", env={"QIWI_DATA_DIR": str(tmp_path), "QIWI_EMBEDDED_DB": "on"})
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert "WARNING" in first
    assert f"embedded PostgreSQL with its data in {tmp_path / 'pgdata'}" in first
    assert "not for production" in first
    assert (tmp_path / "pgdata" / "PG_VERSION").is_file()


@pytest.mark.parametrize("asked", ["false", "", None])
def test_embedded_database_not_asked_for_stops_at_once(tmp_path: Path, asked: str | None) -> None:
    """Unset and empty are "not asked for" too: compose passes ${QIWI_EMBEDDED_DB:-} empty."""
    env = {"QIWI_DATA_DIR": str(tmp_path), "PGHOST": "db.internal"}
    if asked is not None:
        env["QIWI_EMBEDDED_DB"] = asked
    result = run_process("serve", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("qiwi-gw: configuration error: PG_HOST: ")
    assert "DATABASE_URL" in lines[0]
    assert not (tmp_path / "pgdata").exists()


@pytest.mark.timeout(180)
def test_a_role_confined_to_template1_creates_the_database_while_template1_is_busy() -> None:
    """Where template1 is the only database the role may connect to, other sessions are
    always on it when replicas start together, and a copy of template1 waits 5 s for them
    and fails: the database is copied from template0 instead, with template1's encoding
    and locale. Another session stays on template1 throughout, and the first try creates."""
    with cluster() as own:
        primary = own.primary()
        execute(primary.dsn(), "CREATE ROLE creator LOGIN CREATEDB")
        execute(primary.dsn(), "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
        with psycopg.connect(primary.dsn("template1"), autocommit=True):
            applied = server.migrate(with_user(primary.dsn("qiwi_confined"), "creator"), "public")
        made = execute(
            primary.dsn(),
            "SELECT d.encoding = t.encoding AND d.datcollate = t.datcollate"
            " AND d.datctype = t.datctype FROM pg_database d, pg_database t"
            " WHERE d.datname = 'qiwi_confined' AND t.datname = 'template1'",
        )
    assert applied == migrations.expected_ids()
    assert made == [(True,)]


@pytest.mark.timeout(180)
def test_a_role_confined_to_template1_copies_it_where_template0_differs() -> None:
    """template0 is copied instead of template1 only where the two encode and sort text
    alike: here template1 was remade as SQL_ASCII with the C locale (template0 is UTF8),
    and the database made from template1 has template1's encoding and locale."""
    with cluster() as own:
        primary = own.primary()
        for statement in (
            "UPDATE pg_database SET datistemplate = false WHERE datname = 'template1'",
            "DROP DATABASE template1",
            "CREATE DATABASE template1 TEMPLATE template0 ENCODING 'SQL_ASCII'"
            " LC_COLLATE 'C' LC_CTYPE 'C' IS_TEMPLATE true",
            "CREATE ROLE creator LOGIN CREATEDB",
            "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
        ):
            execute(primary.dsn(), statement)
        created = provision.create_if_missing(with_user(primary.dsn("qiwi_legacy"), "creator"))
        made = execute(
            primary.dsn(),
            "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,"
            " d.datlocprovider = t.datlocprovider"
            " FROM pg_database d, pg_database t"
            " WHERE d.datname = 'qiwi_legacy' AND t.datname = 'template1'",
        )
    assert created is True
    assert made == [("SQL_ASCII", "C", "C", True)]
