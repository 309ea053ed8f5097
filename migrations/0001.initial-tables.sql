-- depends:
-- The original image's two tables, kept under their names and columns so the
-- queries operators already run keep working; the extra columns hold what QIWI
-- sent that the original dropped.

CREATE TABLE qiwi_http_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip text,
    url text NOT NULL,
    method text NOT NULL,
    headers json NOT NULL,
    body text NOT NULL DEFAULT '',
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE INDEX qiwi_http_log_created_at_idx ON qiwi_http_log (created_at);

CREATE TABLE qiwi_transaction (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL,
    code text NOT NULL UNIQUE,
    sum numeric(17, 2) NOT NULL CHECK (sum > 0),
    status integer NOT NULL DEFAULT 0 CHECK (status IN (0, 1)),
    txn_date timestamp NOT NULL,
    ccy text,
    prv_id text,
    extra jsonb NOT NULL DEFAULT '{}',
    http_log_id bigint,
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE INDEX qiwi_transaction_created_at_idx ON qiwi_transaction (created_at);
CREATE INDEX qiwi_transaction_txn_date_idx ON qiwi_transaction (txn_date);
