-- Account sync and reconciliation bookkeeping (the provisioner writes, pages and sepayctl read).

alter table sepay_connections
    add column last_synced_at timestamptz,
    add column last_sync_error text,
    add column last_reconciled_at timestamptz;

create table sepay_reconciliation_runs (
    id           bigint generated always as identity primary key,
    ws_id        uuid not null references workspaces (id) on delete cascade,
    trigger      text not null check (trigger in ('schedule', 'request')),
    window_from  timestamptz not null,
    window_to    timestamptz not null,
    status       text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
    fetched      integer not null default 0,
    inserted     integer not null default 0,
    error        text,
    started_at   timestamptz not null default now(),
    finished_at  timestamptz
);
create index sepay_reconciliation_runs_ws on sepay_reconciliation_runs (ws_id, id desc);

-- one live SePay-provisioned endpoint per (workspace, bank account): re-provisioning is idempotent
create unique index sepay_webhook_endpoints_live_account
    on sepay_webhook_endpoints (ws_id, bank_account_id)
    where status = 'active' and sepay_webhook_id is not null;
