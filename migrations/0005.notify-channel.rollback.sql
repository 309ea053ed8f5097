-- 0002's trigger function again: the channel 'qiwi_gw:' || schema, whatever its length.
CREATE OR REPLACE FUNCTION qiwi_gw_notify_payment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qiwi_gw:' || TG_TABLE_SCHEMA, NEW.id::text);
    RETURN NULL;
END
$$;
