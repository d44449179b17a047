-- Every delivery of an event, as the ingress answered it: when, from where, what it became, the
-- status code and how long the answer took. Shown on the event's page; rows older than
-- DELIVERY_LOG_RETENTION_DAYS are deleted by the ingress. Unauthenticated requests have no event
-- and are never logged here (junk cannot grow this table).

create table sepay_delivery_attempts (
    id           bigint generated always as identity primary key,
    event_id     bigint not null references sepay_webhook_events (id) on delete cascade,
    received_at  timestamptz not null,
    source_addr  text,
    -- new, reopened, in_flight, duplicate, invalid_payload
    outcome      text not null,
    status_code  smallint not null,
    latency_ms   real not null
);
create index sepay_delivery_attempts_event on sepay_delivery_attempts (event_id, received_at);
-- the retention sweep
create index sepay_delivery_attempts_received on sepay_delivery_attempts (received_at);
