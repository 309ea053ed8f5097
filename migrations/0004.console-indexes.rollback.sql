DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_pending_id_idx;
DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_account_idx;
