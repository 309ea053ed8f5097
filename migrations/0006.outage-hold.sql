-- depends: 0004.console-indexes 0005.notify-channel
-- transactional: false
-- Tells the rows an outage held back from the rows the backend rejected on their
-- own: when the backend comes back only the former are made due at once, in
-- batches through this partial index; a rejected row keeps its own backoff.
--
-- A constant default makes ADD COLUMN instant (no table rewrite), and the index is
-- built CONCURRENTLY so a gateway already serving keeps storing payments.
ALTER TABLE qiwi_transaction ADD COLUMN IF NOT EXISTS held_by_outage boolean NOT NULL DEFAULT false;

DROP INDEX CONCURRENTLY IF EXISTS qiwi_transaction_held_idx;
CREATE INDEX CONCURRENTLY qiwi_transaction_held_idx
    ON qiwi_transaction (id) WHERE status = 0 AND held_by_outage;
