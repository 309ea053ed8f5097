"""What each QIWI command does to the database and the merchant's backend.

Database failures become ``DatabaseUnavailableError``, which the handler answers with
code 1: QIWI repeats the call later, and a repeated ``pay`` is idempotent.
"""

from __future__ import annotations

import logging

from qiwi_gw.checker import AccountChecker
from qiwi_gw.group_commit import GroupCommitter
from qiwi_gw.protocol import Answer, Check, Command, GetInfo, Pay, ProtocolError, ResultCode
from qiwi_gw.store import transactions
from qiwi_gw.store.http_log import HttpLogEntry
from qiwi_gw.store.transactions import LoggedRequest

logger = logging.getLogger(__name__)


class Payments:
    def __init__(
        self,
        checker: AccountChecker,
        committer: GroupCommitter,
        *,
        deliver_webhooks: bool,
    ) -> None:
        self._checker = checker
        self._committer = committer
        self._new_status = (
            transactions.STATUS_RECEIVED if deliver_webhooks else transactions.STATUS_COMPLETED
        )

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
        stored = await self._committer.store(LoggedRequest(entry, pay, self._new_status))
        assert stored is not None  # a request with a payment gets its row
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
        """Log a request that carries no payment (group-committed like payments)."""
        await self._committer.store(LoggedRequest(entry))
