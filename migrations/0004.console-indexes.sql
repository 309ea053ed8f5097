-- depends: 0003.operator-indexes
-- transactional: false
-- Indexes for the operator console's payment search (/payments), newest first by
-- id with keyset pagination, so one page reads a page's worth of index entries
-- however many million rows the table holds.
--
-- Built CONCURRENTLY, like 0003, so a gateway already serving keeps storing
-- payments while they build; each is dropped first in case an earlier build
-- failed half-way and left an INVALID index behind.

-- Search by account: the account's payments, newest first.
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_account_idx;
CREATE INDEX CONCURRENTLY qiwi_transaction_account_idx
    ON qiwi_transaction (account, id);

-- Search by status 0: the undelivered payments, newest first. The two partial
-- indexes of 0002/0003 order them by next_attempt_at and created_at instead.
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_pending_id_idx;
CREATE INDEX CONCURRENTLY qiwi_transaction_pending_id_idx
    ON qiwi_transaction (id) WHERE status = 0;
