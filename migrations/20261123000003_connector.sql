-- The connector: single-use OAuth states and a visible "disconnecting" state.

-- A state the callback accepted, by SHA-256: a replayed callback (same cookie, same state) is refused.
-- Rows older than the state's 10-minute lifetime are useless and purged by the connector.
create table sepay_oauth_used_states (
    state_hash  bytea primary key,
    ws_id       uuid not null references workspaces (id) on delete cascade,
    used_at     timestamptz not null default now()
);
create index sepay_oauth_used_states_used_at on sepay_oauth_used_states (used_at);

-- Set when an admin asks to disconnect; the page shows "disconnecting" while the status is still
-- active (the provisioner revokes), and a reconnect clears it.
alter table sepay_connections add column disconnect_requested_at timestamptz;
