-- depends: 0001.initial-tables
-- Webhook delivery state. The table is the queue: a row with status 0 and a
-- due next_attempt_at is work; NOTIFY only says "look now".

-- next_attempt_at defaults to "now" so that rows written without it (by the
-- original image, or by hand) are due at once rather than never.
ALTER TABLE qiwi_transaction
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz DEFAULT now(),
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN last_error text,
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN locked_until timestamptz,
    ADD COLUMN locked_by text;

-- Only undelivered rows are indexed, so the sweep stays cheap with millions delivered.
CREATE INDEX qiwi_transaction_pending_idx ON qiwi_transaction (next_attempt_at) WHERE status = 0;

CREATE TABLE qiwi_webhook_attempt (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES qiwi_transaction (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    http_status integer,
    error text,
    response_excerpt text
);

CREATE INDEX qiwi_webhook_attempt_transaction_idx ON qiwi_webhook_attempt (transaction_id, attempt);

-- The channel carries the schema so gateways of different schemas on one
-- database do not wake each other.
CREATE FUNCTION qiwi_gw_notify_payment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qiwi_gw:' || TG_TABLE_SCHEMA, NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER qiwi_transaction_notify
    AFTER INSERT ON qiwi_transaction
    FOR EACH ROW WHEN (NEW.status = 0)
    EXECUTE FUNCTION qiwi_gw_notify_payment();
