DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_held_idx;
ALTER TABLE qiwi_transaction DROP COLUMN IF EXISTS held_by_outage;
