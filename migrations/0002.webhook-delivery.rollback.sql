DROP TRIGGER qiwi_transaction_notify ON qiwi_transaction;
DROP FUNCTION qiwi_gw_notify_payment();
DROP TABLE qiwi_webhook_attempt;
DROP INDEX qiwi_transaction_pending_idx;
ALTER TABLE qiwi_transaction
    DROP COLUMN attempts,
    DROP COLUMN next_attempt_at,
    DROP COLUMN last_attempt_at,
    DROP COLUMN last_error,
    DROP COLUMN delivered_at,
    DROP COLUMN locked_until,
    DROP COLUMN locked_by;
