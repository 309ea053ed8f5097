-- depends: 0002.webhook-delivery
-- transactional: false
-- Indexes for the operator commands (qiwi-gw status / pending), so that they
-- answer from an index on a table of millions of rows instead of scanning it.
--
-- Built CONCURRENTLY so that a gateway already serving keeps storing payments
-- while they build; that cannot run inside a transaction, hence
-- "transactional: false". Each is dropped first: a build that failed half-way
-- leaves an INVALID index behind that IF NOT EXISTS would keep.

-- The oldest undelivered payments, in the order they were stored (status, pending).
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_pending_created_idx;
CREATE INDEX CONCURRENTLY qiwi_transaction_pending_created_idx
    ON qiwi_transaction (created_at, id) WHERE status = 0;

-- The last delivery (status).
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_delivered_at_idx;
CREATE INDEX CONCURRENTLY qiwi_transaction_delivered_at_idx
    ON qiwi_transaction (delivered_at) WHERE delivered_at IS NOT NULL;

-- The last failed webhook attempt (status); failures are few, so this stays small.
DROP INDEX CONCURRENTLY IF EXISTS qiwi_webhook_attempt_failed_idx;
CREATE INDEX CONCURRENTLY qiwi_webhook_attempt_failed_idx
    ON qiwi_webhook_attempt (started_at)
    WHERE error IS NOT NULL OR http_status < 200 OR http_status > 299;
