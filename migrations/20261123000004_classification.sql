-- Classification: ordered workspace rules, and the result an AI call bought (so a redelivered
-- event reuses it instead of paying again).

create table classification_rules (
    id               uuid primary key default gen_random_uuid(),
    ws_id            uuid not null references workspaces (id) on delete cascade,
    position         integer not null,
    name             text not null,
    match_all        boolean not null default true,
    -- [{"field": "content|amount|direction|account", "op": "contains|is|regex|one_of|gte|lte", "value": …}]
    conditions       jsonb not null,
    category_id      uuid,
    tags             text[] not null default '{}',
    stop_processing  boolean not null default true,
    active           boolean not null default true,
    created_at       timestamptz not null default now(),
    foreign key (ws_id, category_id) references transaction_categories (ws_id, id)
);
create index classification_rules_ws on classification_rules (ws_id, position) where active;

alter table ai_credit_reservations add column result jsonb;
create index ai_credit_reservations_expiring on ai_credit_reservations (expires_at) where status = 'reserved';
