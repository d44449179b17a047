-- A connection whose token refresh fails for a passing reason is `degraded` (still used, the
-- refresh retried with backoff); only a definitive refusal makes it `needs_reconnect`
-- (sepay-core `connection.rs`). The old `error` could have been either: asking for a reconnect
-- is the safe reading.
alter table sepay_connections drop constraint sepay_connections_status_check;
update sepay_connections set status = 'needs_reconnect' where status = 'error';
alter table sepay_connections add constraint sepay_connections_status_check
    check (status in ('active', 'degraded', 'needs_reconnect', 'revoked'));
alter table sepay_connections
    add column refresh_failures integer not null default 0,
    add column next_refresh_at timestamptz;
