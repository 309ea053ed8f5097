DROP INDEX CONCURRENTLY IF EXISTS qiwi_webhook_attempt_failed_idx;
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_delivered_at_idx;
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_pending_created_idx;
