-- Webhook health: the provisioner verifies every provisioned webhook at SePay and repairs what
-- it finds deleted, disabled or changed (docs/provisioner.md).
alter table sepay_webhook_endpoints add column last_verified_at timestamptz;

create table sepay_webhook_repairs (
    id              bigserial primary key,
    ws_id           uuid not null references workspaces (id) on delete cascade,
    endpoint_id     uuid,
    bank_account_id text,
    kind            text not null check (kind in ('missing', 'disabled', 'drifted')),
    detail          text not null,
    repaired_at     timestamptz not null default now()
);
create index sepay_webhook_repairs_ws on sepay_webhook_repairs (ws_id, id desc);
