"""What each QIWI command does to the database and the merchant's backend.

Database failures become ``DatabaseUnavailableError``, which the handler answers with
code 1: QIWI repeats the call later, and a repeated ``pay`` is idempotent.
"""

from __future__ import annotations

import logging

import asyncpg

from qiwi_gw.batcher import PayBatcher
from qiwi_gw.checker import AccountChecker
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import DatabaseUnavailableError, describe
from qiwi_gw.protocol import Answer, Check, Command, GetInfo, Pay, ProtocolError, ResultCode
from qiwi_gw.store import http_log, transactions
from qiwi_gw.store.http_log import HttpLogEntry
from qiwi_gw.store.transactions import PayRequest

logger = logging.getLogger(__name__)


class Payments:
    def __init__(
        self,
        pool: asyncpg.Pool,
        checker: AccountChecker,
        batcher: PayBatcher,
        *,
        deliver_webhooks: bool,
        db_timeout: float,
    ) -> None:
        self._pool = pool
        self._checker = checker
        self._batcher = batcher
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
        stored = await self._batcher.store(PayRequest(entry, pay, self._new_status))
        payment = stored.payment
        context = {"txn_id": pay.txn_id, "prv_txn": payment.id}
        if stored.created:
            logger.info("payment stored", extra=context)
        elif payment.account != pay.account or payment.sum != pay.sum:
            logger.warning("txn_id repeated with another account or sum", extra=context)
            raise ProtocolError(
                ResultCode.OTHER, "txn_id was already paid with another account or sum"
            )
        else:
            logger.info("repeated pay answered", extra=context)
        return Answer(
            result=ResultCode.OK,
            comment="OK",
            osmp_txn_id=pay.txn_id,
            prv_txn=payment.id,
            sum=payment.sum,
        )

    async def log(self, entry: HttpLogEntry) -> None:
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                await http_log.insert(connection, entry)
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailableError(describe(exc)) from exc
