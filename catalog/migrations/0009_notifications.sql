-- Notifications for people: what a viewer's favorites did, and for admins what the
-- transcoder did. Produced from the title events webhooks already report (0007): the same
-- trigger, in the same transaction as the change, also writes the event into an outbox here,
-- which every `serve` process drains (`FOR UPDATE SKIP LOCKED`) into notification rows.

-- The outbox: one row per title event that may notify someone; deleted in the transaction
-- that turns it into notifications.
CREATE TABLE catalog.notification_events (
    id bigserial PRIMARY KEY,
    event text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog.notifications (
    id bigserial PRIMARY KEY,
    -- keyed by the account's id with no foreign key (auth's schema is not ours)
    user_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('title_ready', 'episode_available', 'transcode_ready', 'transcode_failed')),
    -- what makes two notifications the same one: at most one per person per key
    -- (e.g. `title_ready:{title}:{version}`), however often the event is replayed
    key text NOT NULL,
    -- no foreign key either: a notification outlives the title it reports
    title_id uuid,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz,
    UNIQUE (user_id, key)
);
CREATE INDEX notifications_user_idx ON catalog.notifications (user_id, id DESC);
CREATE INDEX notifications_unread_idx ON catalog.notifications (user_id) WHERE read_at IS NULL;

-- The webhooks' emitter, now also filling the notifications outbox (with the events that can
-- notify anyone), and waking the producers.
CREATE OR REPLACE FUNCTION catalog.webhook_emit(event text, data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.webhook_deliveries (webhook_id, event, payload)
    SELECT w.id, event, jsonb_build_object('type', event, 'created_at', now(), 'data', data)
      FROM catalog.webhooks w
     WHERE w.deleted_at IS NULL AND event = ANY (w.events);
    IF FOUND THEN
        PERFORM pg_notify('streamflix_webhooks', event);
    END IF;
    IF event IN ('title.playable', 'title.ready', 'title.failed') THEN
        INSERT INTO catalog.notification_events (event, data) VALUES (event, data);
        PERFORM pg_notify('streamflix_notifications', event);
    END IF;
END
$$;
