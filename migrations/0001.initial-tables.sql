-- depends:
-- The original image's two tables, under their names and with their columns, so
-- the queries operators already run keep working. Where the original image has
-- already created them, they are taken over as they are: nothing is dropped or
-- renamed, the columns it lacked are added, and the sum becomes a decimal.

CREATE TABLE IF NOT EXISTS qiwi_http_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip text,
    url text NOT NULL,
    method text NOT NULL,
    headers json NOT NULL,
    body text NOT NULL DEFAULT '',
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE INDEX IF NOT EXISTS qiwi_http_log_created_at_idx ON qiwi_http_log (created_at);

CREATE TABLE IF NOT EXISTS qiwi_transaction (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL,
    code text NOT NULL,
    sum numeric(17, 2) NOT NULL CHECK (sum > 0),
    status integer NOT NULL DEFAULT 0 CHECK (status IN (0, 1))
);

-- Money is a decimal here, whatever type the original image used.
ALTER TABLE qiwi_transaction ALTER COLUMN sum TYPE numeric(17, 2) USING round(sum::numeric, 2);

ALTER TABLE qiwi_transaction
    ADD COLUMN IF NOT EXISTS txn_date timestamp,
    ADD COLUMN IF NOT EXISTS ccy text,
    ADD COLUMN IF NOT EXISTS prv_id text,
    ADD COLUMN IF NOT EXISTS extra jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS http_log_id bigint,
    ADD COLUMN IF NOT EXISTS created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    ADD COLUMN IF NOT EXISTS updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC');

-- Payments the original image stored carry no QIWI date: their storing time stands in.
UPDATE qiwi_transaction SET txn_date = created_at WHERE txn_date IS NULL;
ALTER TABLE qiwi_transaction ALTER COLUMN txn_date SET NOT NULL;

-- txn_id is the key of idempotency: one unique index on code, unless the original
-- image's table already has one.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'qiwi_transaction'::regclass
          AND i.indisunique AND i.indnkeyatts = 1 AND a.attname = 'code'
    ) THEN
        CREATE UNIQUE INDEX qiwi_transaction_code_key ON qiwi_transaction (code);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS qiwi_transaction_created_at_idx ON qiwi_transaction (created_at);
CREATE INDEX IF NOT EXISTS qiwi_transaction_txn_date_idx ON qiwi_transaction (txn_date);
