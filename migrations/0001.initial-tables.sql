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

-- txn_id is the key of idempotency: every pay's INSERT ... ON CONFLICT (code)
-- needs a unique index on code alone that PostgreSQL can use as its arbiter:
-- valid, over the whole table (not partial), not on an expression, checked at
-- once (not deferrable). A table taken over with one is kept as it is; else one
-- is built. Codes stored more than once make that impossible: the migration
-- stops, naming them, and (being one transaction) changes nothing.
DO $$
DECLARE
    deferred name;
    duplicated bigint;
    examples text;
BEGIN
    -- A deferrable unique constraint on code would be picked as the arbiter and
    -- refused ("ON CONFLICT does not support deferrable unique constraints"):
    -- it becomes the same constraint, checked at once.
    FOR deferred IN
        SELECT c.conname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.conrelid = 'qiwi_transaction'::regclass
          AND c.contype = 'u' AND c.condeferrable
          AND cardinality(c.conkey) = 1 AND a.attname = 'code'
    LOOP
        EXECUTE format(
            'ALTER TABLE qiwi_transaction DROP CONSTRAINT %I, ADD CONSTRAINT %I UNIQUE (code)',
            deferred, deferred
        );
    END LOOP;
    IF EXISTS (
        SELECT 1
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = 'qiwi_transaction'::regclass
          AND i.indisunique AND i.indnkeyatts = 1 AND a.attname = 'code'
          AND i.indpred IS NULL AND i.indexprs IS NULL
          AND i.indisvalid AND i.indimmediate
    ) THEN
        RETURN;
    END IF;
    SELECT count(*), string_agg(left(code, 20), ', ' ORDER BY code) FILTER (WHERE n <= 3)
    INTO duplicated, examples
    FROM (
        SELECT code, row_number() OVER (ORDER BY code) AS n
        FROM qiwi_transaction
        WHERE code IS NOT NULL
        GROUP BY code
        HAVING count(*) > 1
    ) AS d;
    IF duplicated > 0 THEN
        -- The first line is what qiwi-gw prints: short, with what to do.
        RAISE EXCEPTION 'duplicate txn_id in qiwi_transaction.code (%): %; nothing changed. Keep one row per code, then migrate again',
            duplicated, examples
            USING DETAIL = 'A unique index on code is what makes a repeated pay idempotent; it cannot be built over these rows.',
                  HINT = 'SELECT code, count(*) FROM qiwi_transaction GROUP BY code HAVING count(*) > 1';
    END IF;
    IF to_regclass('qiwi_transaction_code_key') IS NULL THEN
        CREATE UNIQUE INDEX qiwi_transaction_code_key ON qiwi_transaction (code);
    ELSE
        -- That name is taken by an index that does not qualify (a partial one).
        CREATE UNIQUE INDEX qiwi_transaction_code_full_key ON qiwi_transaction (code);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS qiwi_transaction_created_at_idx ON qiwi_transaction (created_at);
CREATE INDEX IF NOT EXISTS qiwi_transaction_txn_date_idx ON qiwi_transaction (txn_date);
