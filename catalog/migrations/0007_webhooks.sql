-- Webhooks: endpoints an admin registers, and the outbox of deliveries to them.
--
-- Events are written by a trigger on catalog.titles, so a delivery exists exactly when the
-- change it reports committed (same transaction), whatever code made the change:
--   title.created   a row inserted
--   title.playable  status became 'playable'
--   title.ready     status became 'ready', or a ready title switched to a new version
--   title.failed    status became 'failed'
--   title.deleted   a row deleted (a series' episodes go with it, each reported)
-- Other producers (uploads) call catalog.webhook_emit() in their own transactions.
CREATE TABLE catalog.webhooks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    events text[] NOT NULL CHECK (cardinality(events) > 0),
    -- the signing secret: needed in clear to sign, so kept as given (shown once to the admin)
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE catalog.webhook_deliveries (
    id bigserial PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES catalog.webhooks (id) ON DELETE CASCADE,
    -- the idempotency id a receiver dedupes on: the same for every attempt and every resend
    event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    event text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- retried until then (a day after the event); a resend gives another day
    give_up_at timestamptz NOT NULL DEFAULT now() + interval '1 day',
    last_status integer,
    last_error text,
    last_attempt_at timestamptz,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx ON catalog.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON catalog.webhook_deliveries (webhook_id, id DESC);

-- One delivery per live endpoint subscribed to `event`; wakes the senders.
CREATE FUNCTION catalog.webhook_emit(event text, data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.webhook_deliveries (webhook_id, event, payload)
    SELECT w.id, event, jsonb_build_object('type', event, 'created_at', now(), 'data', data)
      FROM catalog.webhooks w
     WHERE w.deleted_at IS NULL AND event = ANY (w.events);
    IF FOUND THEN
        PERFORM pg_notify('streamflix_webhooks', event);
    END IF;
END
$$;

CREATE FUNCTION catalog.titles_webhook_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_ catalog.titles;
    event text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_ := OLD;
        event := 'title.deleted';
    ELSIF TG_OP = 'INSERT' THEN
        row_ := NEW;
        event := 'title.created';
    ELSE
        row_ := NEW;
        IF NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('playable', 'ready', 'failed') THEN
            event := 'title.' || NEW.status;
        ELSIF NEW.status = 'ready' AND NEW.current_version IS DISTINCT FROM OLD.current_version THEN
            event := 'title.ready';
        ELSE
            RETURN NULL;
        END IF;
    END IF;
    PERFORM catalog.webhook_emit(event, jsonb_build_object(
        'title_id', row_.id, 'kind', row_.kind, 'title', row_.title, 'status', row_.status,
        'version', row_.current_version, 'failure_reason', row_.failure_reason));
    RETURN NULL;
END
$$;

CREATE TRIGGER titles_webhook_events
    AFTER INSERT OR UPDATE OF status, current_version OR DELETE ON catalog.titles
    FOR EACH ROW EXECUTE FUNCTION catalog.titles_webhook_events();
