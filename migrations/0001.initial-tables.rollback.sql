-- Never drops qiwi_http_log or qiwi_transaction: they hold payments, possibly the
-- original image's. Only what 0001 added beyond the original image's columns goes.
DROP INDEX IF EXISTS qiwi_transaction_txn_date_idx;
DROP INDEX IF EXISTS qiwi_transaction_created_at_idx;
DROP INDEX IF EXISTS qiwi_http_log_created_at_idx;
ALTER TABLE qiwi_transaction
    DROP COLUMN IF EXISTS txn_date,
    DROP COLUMN IF EXISTS ccy,
    DROP COLUMN IF EXISTS prv_id,
    DROP COLUMN IF EXISTS extra,
    DROP COLUMN IF EXISTS http_log_id,
    DROP COLUMN IF EXISTS created_at,
    DROP COLUMN IF EXISTS updated_at;
