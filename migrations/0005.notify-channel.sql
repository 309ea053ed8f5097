-- depends: 0002.webhook-delivery
-- The insert trigger's channel fits PostgreSQL's 63-byte limit for every schema
-- name: 'qiwi_gw:' || schema while that fits, else the schema's first 46
-- characters and the first 8 hex digits of its md5 (src/qiwi_gw/channel.py has
-- the same rule; the two must agree). Before this, a schema of 56 characters or
-- more made pg_notify fail, and with it every insert of a pending payment.
-- Computed inline from built-ins, not through a function of ours: a session
-- with another search_path (an operator's psql) must still be able to insert.

CREATE OR REPLACE FUNCTION qiwi_gw_notify_payment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := 'qiwi_gw:' || TG_TABLE_SCHEMA;
BEGIN
    IF octet_length(channel) > 63 THEN
        channel := 'qiwi_gw:' || left(TG_TABLE_SCHEMA, 46) || ':' || left(md5(TG_TABLE_SCHEMA), 8);
    END IF;
    PERFORM pg_notify(channel, NEW.id::text);
    RETURN NULL;
END
$$;
