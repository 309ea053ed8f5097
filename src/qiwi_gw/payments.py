"""What each QIWI command does to the database and the merchant's backend.

Database failures become ``DatabaseUnavailableError``, which the handler answers with
code 1: QIWI repeats the call later, and a repeated ``pay`` is idempotent.

A ``pay`` whose txn_id is stored is answered from its row (0 with the same
``prv_txn``, or 300 when the account or sum differ), whatever the account rules,
the merchant's limits or the check URL say now: QIWI takes a fatal answer as
"the payment failed" and refunds the customer, while the merchant already has
the payment. So a refusal of a ``pay`` is final only once the table says the
txn_id is not stored; when the table cannot say, the answer is 1.
"""

from __future__ import annotations

import collections
import logging

from qiwi_gw.checker import AccountChecker
from qiwi_gw.errors import BackendUnavailableError, DatabaseUnavailableError
from qiwi_gw.group_commit import GroupCommitter
from qiwi_gw.protocol import (
    Answer,
    Check,
    Command,
    GetInfo,
    Limits,
    Pay,
    ProtocolError,
    ResultCode,
    apply_rules,
)
from qiwi_gw.store.http_log import HttpLogEntry
from qiwi_gw.store.payments import (
    STATUS_COMPLETED,
    STATUS_RECEIVED,
    LoggedRequest,
    StoredPayment,
)

logger = logging.getLogger(__name__)


class Payments:
    def __init__(
        self,
        checker: AccountChecker,
        committer: GroupCommitter,
        *,
        limits: Limits,
        deliver_webhooks: bool,
        check_on_pay: bool = False,
    ) -> None:
        self._checker = checker
        self._committer = committer
        self._limits = limits
        self._check_on_pay = check_on_pay
        # Pays that passed the limits and may store their txn_id now: a refusal of
        # another request for that txn_id meanwhile could contradict this one's 0 (QIWI
        # repeats a pay whose answer is late), so it becomes 1 and the repeat answers
        # from the row. Requests the limits refuse never count: they store nothing.
        self._storing: collections.Counter[str] = collections.Counter()
        self._new_status = STATUS_RECEIVED if deliver_webhooks else STATUS_COMPLETED

    async def handle(self, command: Command, entry: HttpLogEntry) -> Answer:
        """Raise ``DatabaseUnavailableError``, ``BackendUnavailableError`` or ``ProtocolError``."""
        if isinstance(command, Pay):
            return await self.pay(command, entry)
        try:
            apply_rules(command, self._limits)
        except ProtocolError as error:
            await self.log_quietly(entry)
            logger.info("rejected request: %s", error)
            raise
        await self.log(entry)
        if not await self._checker.account_exists(command.account):
            raise ProtocolError(ResultCode.ACCOUNT_NOT_FOUND, "account not found")
        if isinstance(command, Check):
            return Answer(result=ResultCode.OK, comment="OK", osmp_txn_id=command.txn_id)
        assert isinstance(command, GetInfo)
        return Answer(result=ResultCode.OK, comment="OK")

    async def pay(self, pay: Pay, entry: HttpLogEntry) -> Answer:
        """Store the payment with its log row; answer 0 only once both are committed."""
        refusal = _refusal(pay, self._limits)
        if refusal is None:
            # From here this request may store the txn_id: a refusal of another request
            # for it meanwhile must not contradict this one's 0.
            self._storing[pay.txn_id] += 1
            try:
                if self._check_on_pay:
                    refusal = await self._ask_backend(pay, entry)
                if refusal is None:
                    return await self._store(pay, entry)
            finally:
                self._storing[pay.txn_id] -= 1
                if not self._storing[pay.txn_id]:
                    del self._storing[pay.txn_id]
        return await self._refuse(pay, entry, refusal)

    async def _store(self, pay: Pay, entry: HttpLogEntry) -> Answer:
        stored = await self._committer.store(LoggedRequest(entry, pay, self._new_status))
        assert stored is not None  # a request with a payment gets its row
        if stored.created:
            logger.info(
                "payment stored", extra={"txn_id": pay.txn_id, "prv_txn": stored.payment.id}
            )
            return _paid(pay, stored.payment)
        return _from_row(pay, stored.payment)

    async def _ask_backend(self, pay: Pay, entry: HttpLogEntry) -> ProtocolError | None:
        """QIWI_CHECK_ON_PAY: the check URL decides a txn_id not yet stored. A stored
        one never asks: its answer is its row's."""
        if await self._committer.lookup(pay.txn_id) is not None:
            return None
        try:
            exists = await self._checker.account_exists(pay.account)
        except BackendUnavailableError:
            # Nothing stored: QIWI repeats on 1, and the repeat asks again.
            await self.log_quietly(entry)
            raise
        if exists:
            return None
        return ProtocolError(ResultCode.ACCOUNT_NOT_FOUND, "account not found")

    async def _refuse(self, pay: Pay, entry: HttpLogEntry, refusal: ProtocolError) -> Answer:
        """Log the request; answer from the stored row if there is one, else refuse.

        Looked up after the log row is committed, so a row stored by the same
        batch is seen. Not quietly: without the database nothing says whether the
        txn_id is stored, and only 1 is safe then."""
        await self.log(entry)
        stored = await self._committer.lookup(pay.txn_id)
        if stored is None:
            if self._storing[pay.txn_id]:
                logger.info(
                    "pay refusal deferred: another request for this txn_id is in flight",
                    extra={"txn_id": pay.txn_id},
                )
                raise ProtocolError(
                    ResultCode.TEMPORARY, "another request for this txn_id is in progress"
                )
            logger.info("pay refused: %s", refusal, extra={"txn_id": pay.txn_id})
            raise refusal
        return _from_row(pay, stored)

    async def log(self, entry: HttpLogEntry) -> None:
        """Log a request that carries no payment (group-committed like payments)."""
        await self._committer.store(LoggedRequest(entry))

    async def log_quietly(self, entry: HttpLogEntry) -> None:
        """Log a request whose answer does not depend on the database: a failure
        here is reported in the logs and does not change the answer."""
        try:
            await self.log(entry)
        except DatabaseUnavailableError as error:
            logger.warning("could not log a rejected request: %s", error)


def _refusal(pay: Pay, limits: Limits) -> ProtocolError | None:
    try:
        apply_rules(pay, limits)
    except ProtocolError as error:
        return error
    return None


def _from_row(pay: Pay, payment: StoredPayment) -> Answer:
    """A repeat: 0 with the stored ``prv_txn`` when account and sum match, else 300."""
    context = {"txn_id": pay.txn_id, "prv_txn": payment.id}
    if payment.account != pay.account or payment.sum != pay.sum:
        logger.warning("txn_id repeated with another account or sum", extra=context)
        raise ProtocolError(ResultCode.OTHER, "txn_id was already paid with another account or sum")
    logger.info("repeated pay answered", extra=context)
    return _paid(pay, payment)


def _paid(pay: Pay, payment: StoredPayment) -> Answer:
    return Answer(
        result=ResultCode.OK,
        comment="OK",
        osmp_txn_id=pay.txn_id,
        prv_txn=payment.id,
        sum=payment.sum,
    )
