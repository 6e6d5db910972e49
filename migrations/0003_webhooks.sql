-- Webhooks: subscriptions, one delivery per (event, matching subscription), and every attempt.

CREATE TABLE subscriptions (
    id                         uuid        PRIMARY KEY,
    url                        text        NOT NULL,
    event_types                text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    description                text        NOT NULL DEFAULT '',
    enabled                    boolean     NOT NULL DEFAULT true,
    -- The HMAC key must be kept to sign (a hash would not do); it is only ever returned by the API
    -- when created or rotated, and never logged.
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    disabled_reason            text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    last_success_at            timestamptz,
    -- The first failure since the last success; a subscription failing for DREAMD_WEBHOOK_DISABLE_AFTER is disabled.
    failing_since              timestamptz,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX subscriptions_created_idx ON subscriptions (created_at, id);

CREATE TABLE deliveries (
    id               uuid        PRIMARY KEY,
    event_id         uuid        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    subscription_id  uuid        NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_type       text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivering', 'succeeded', 'failed')),
    -- Attempts made (rows in delivery_attempts), counted when an attempt is recorded.
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the next attempt is due; NULL once the delivery is final.
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    last_status      integer,
    last_error       text,
    -- A redelivery is a new row pointing at the delivery it repeats (same event, same webhook-id).
    redelivery_of    uuid        REFERENCES deliveries (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((state = 'delivering') = (lease_owner IS NOT NULL)),
    CHECK ((state = 'succeeded') = (delivered_at IS NOT NULL))
);
-- The claim query's path: due pending deliveries, oldest due first.
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, id) WHERE state = 'pending';
-- In-flight deliveries per subscription (the per-subscription cap) and expired leases (the rescuer).
CREATE INDEX deliveries_delivering_idx ON deliveries (subscription_id, lease_expires_at) WHERE state = 'delivering';
-- The delivery log: newest first, by subscription, by event, and bulk recovery.
CREATE INDEX deliveries_created_idx ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_subscription_idx ON deliveries (subscription_id, created_at DESC, id DESC);
CREATE INDEX deliveries_event_idx ON deliveries (event_id);
CREATE INDEX deliveries_redelivery_idx ON deliveries (redelivery_of) WHERE redelivery_of IS NOT NULL;

CREATE TABLE delivery_attempts (
    id            bigserial   PRIMARY KEY,
    delivery_id   uuid        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt       integer     NOT NULL,
    attempted_at  timestamptz NOT NULL,
    status_code   integer,
    duration_ms   integer     NOT NULL,
    -- At most 16 KB of the receiver's answer.
    response_body text        CHECK (octet_length(response_body) <= 16384),
    error         text
);
CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, id);

-- Whether an event type matches any of a subscription's filters: `*` is any run of characters;
-- `%`, `_` and `\` are escaped first so that only `*` is a wildcard.
CREATE FUNCTION dreamd_event_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE event_type LIKE replace(replace(replace(replace(p, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
    )
$$;

-- Fan-out inside the transaction that wrote the event: one delivery per enabled, matching subscription.
CREATE FUNCTION events_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deliveries (id, event_id, subscription_id, event_type, state, next_attempt_at)
    SELECT gen_random_uuid(), NEW.id, s.id, NEW.type, 'pending', now()
    FROM subscriptions s
    WHERE s.enabled AND dreamd_event_type_matches(s.event_types, NEW.type);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_fan_out AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_fan_out();

-- Wake idle delivery workers once per statement that created deliveries (fan-out, redelivery, recovery).
CREATE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_deliveries WHERE state = 'pending') THEN
        PERFORM pg_notify('dreamd_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();
