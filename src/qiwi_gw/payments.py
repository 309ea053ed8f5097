"""What each QIWI command does to the database and the merchant's backend.

Database failures become ``DatabaseUnavailableError``, which the handler answers with
code 1: QIWI repeats the call later, and a repeated ``pay`` is idempotent.
"""

from __future__ import annotations

import logging

import asyncpg

from qiwi_gw.checker import AccountChecker
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import DatabaseUnavailableError
from qiwi_gw.protocol import Answer, Check, Command, GetInfo, Pay, ProtocolError, ResultCode
from qiwi_gw.store import http_log, transactions
from qiwi_gw.store.http_log import HttpLogEntry

logger = logging.getLogger(__name__)


class Payments:
    def __init__(
        self,
        pool: asyncpg.Pool,
        checker: AccountChecker,
        *,
        deliver_webhooks: bool,
        db_timeout: float,
    ) -> None:
        self._pool = pool
        self._checker = checker
        self._new_status = (
            transactions.STATUS_RECEIVED if deliver_webhooks else transactions.STATUS_COMPLETED
        )
        self._db_timeout = db_timeout

    async def handle(self, command: Command, entry: HttpLogEntry) -> Answer:
        """Raise ``DatabaseUnavailableError``, ``BackendUnavailableError`` or ``ProtocolError``."""
        if isinstance(command, Pay):
            return await self.pay(command, entry)
        await self.log(entry)
        if not await self._checker.account_exists(command.account):
            raise ProtocolError(ResultCode.ACCOUNT_NOT_FOUND, "account not found")
        if isinstance(command, Check):
            return Answer(result=ResultCode.OK, comment="OK", osmp_txn_id=command.txn_id)
        assert isinstance(command, GetInfo)
        return Answer(result=ResultCode.OK, comment="OK")

    async def pay(self, pay: Pay, entry: HttpLogEntry) -> Answer:
        """Store the payment with its log row; answer 0 only once both are committed."""
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                new_id = await transactions.insert_with_log(
                    connection, entry, pay, self._new_status
                )
                stored = (
                    None
                    if new_id is not None
                    else await transactions.get_by_code(connection, pay.txn_id)
                )
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailableError(describe(exc)) from exc
        if new_id is not None:
            logger.info("payment stored", extra={"txn_id": pay.txn_id, "prv_txn": new_id})
            return _paid(pay, new_id)
        if stored is None:
            # The conflicting row is gone: only an operator's DELETE does that.
            raise DatabaseUnavailableError(f"txn_id {pay.txn_id} conflicted but is not stored")
        if stored.account != pay.account or stored.sum != pay.sum:
            logger.warning(
                "txn_id repeated with another account or sum", extra={"txn_id": pay.txn_id}
            )
            raise ProtocolError(
                ResultCode.OTHER, "txn_id was already paid with another account or sum"
            )
        logger.info("repeated pay answered", extra={"txn_id": pay.txn_id, "prv_txn": stored.id})
        return _paid(pay, stored.id)

    async def log(self, entry: HttpLogEntry) -> None:
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                await http_log.insert(connection, entry)
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailableError(describe(exc)) from exc


def _paid(pay: Pay, prv_txn: int) -> Answer:
    return Answer(
        result=ResultCode.OK, comment="OK", osmp_txn_id=pay.txn_id, prv_txn=prv_txn, sum=pay.sum
    )


def describe(exc: BaseException) -> str:
    """A one-line description without connection strings (they may hold passwords)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
