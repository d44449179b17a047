-- Running-balance continuity (sepay-core `balance.rs`): every booked SePay transaction with an id
-- and a balance is a point on its account's chain; a break between two neighbours is a gap, which
-- the provisioner reconciles over just that span until a transaction fills it.
create table sepay_balance_points (
    seq            bigserial primary key,
    ws_id          uuid not null references workspaces (id) on delete cascade,
    account_number text not null,
    sepay_id       bigint not null,
    taken_at       timestamptz not null,
    amount         numeric not null,
    accumulated    numeric not null,
    recorded_at    timestamptz not null default now(),
    unique (ws_id, account_number, sepay_id)
);

create table sepay_balance_gaps (
    id              bigserial primary key,
    ws_id           uuid not null references workspaces (id) on delete cascade,
    account_number  text not null,
    after_sepay_id  bigint not null,
    before_sepay_id bigint not null,
    after_at        timestamptz not null,
    before_at       timestamptz not null,
    -- the balance the later transaction implies before it, and the one the earlier left
    expected_before numeric not null,
    seen_before     numeric not null,
    status          text not null default 'open' check (status in ('open', 'closed', 'flagged')),
    attempts        integer not null default 0,
    opened_at       timestamptz not null default now(),
    next_attempt_at timestamptz not null,
    closed_at       timestamptz,
    last_error      text,
    unique (ws_id, account_number, after_sepay_id, before_sepay_id)
);
create index sepay_balance_gaps_due on sepay_balance_gaps (next_attempt_at) where status = 'open';

-- reconciliation runs started for a gap, or for a balance that moved past the last booking
alter table sepay_reconciliation_runs drop constraint sepay_reconciliation_runs_trigger_check;
alter table sepay_reconciliation_runs add constraint sepay_reconciliation_runs_trigger_check
    check (trigger in ('schedule', 'request', 'gap', 'balance', 'repair'));

-- A scheduled reconciliation covers everything since the last successful one (an outage longer
-- than the look-back is covered), and a failing one backs off instead of retrying every minute.
alter table sepay_connections
    add column reconciled_through timestamptz,
    add column reconcile_failures integer not null default 0,
    add column reconcile_retry_at timestamptz;
