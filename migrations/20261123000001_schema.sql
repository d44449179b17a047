-- The whole data model of ../shared/design.md. Platform tables first (a host platform may own
-- these), then the SePay tables. Money is numeric, times are timestamptz.

-- Platform ------------------------------------------------------------------------------------

create table workspaces (
    id          uuid primary key default gen_random_uuid(),
    name        text not null,
    created_at  timestamptz not null default now()
);

create table workspace_members (
    ws_id       uuid not null references workspaces (id) on delete cascade,
    user_id     text not null,
    role        text not null check (role in ('owner', 'admin', 'member')),
    created_at  timestamptz not null default now(),
    primary key (ws_id, user_id)
);

create table wallets (
    id          uuid primary key default gen_random_uuid(),
    ws_id       uuid not null references workspaces (id) on delete cascade,
    name        text not null,
    currency    text not null default 'VND',
    created_at  timestamptz not null default now(),
    -- target of composite FKs, so a row can only point at a wallet of its own workspace
    unique (ws_id, id)
);

create table transaction_categories (
    id          uuid primary key default gen_random_uuid(),
    ws_id       uuid not null references workspaces (id) on delete cascade,
    name        text not null,
    is_expense  boolean not null,
    created_at  timestamptz not null default now(),
    unique (ws_id, name, is_expense),
    unique (ws_id, id)
);

create table wallet_transactions (
    id                        uuid primary key default gen_random_uuid(),
    ws_id                     uuid not null references workspaces (id) on delete cascade,
    wallet_id                 uuid not null,
    amount                    numeric not null,
    description               text not null default '',
    category_id               uuid,
    taken_at                  timestamptz not null,
    created_at                timestamptz not null default now(),
    source                    text not null,
    -- the event's dedupe key: a second booking of the same bank transaction is refused here too
    external_ref              text not null,
    classified_by             text,
    classification_confidence real,
    foreign key (ws_id, wallet_id) references wallets (ws_id, id),
    foreign key (ws_id, category_id) references transaction_categories (ws_id, id),
    unique (ws_id, external_ref)
);
create index wallet_transactions_wallet_taken on wallet_transactions (wallet_id, taken_at desc);

create table transaction_tags (
    id          uuid primary key default gen_random_uuid(),
    ws_id       uuid not null references workspaces (id) on delete cascade,
    name        text not null,
    created_at  timestamptz not null default now(),
    unique (ws_id, name)
);

create table wallet_transaction_tags (
    transaction_id  uuid not null references wallet_transactions (id) on delete cascade,
    tag_id          uuid not null references transaction_tags (id) on delete cascade,
    primary key (transaction_id, tag_id)
);

create table workspace_ai_credits (
    ws_id       uuid primary key references workspaces (id) on delete cascade,
    balance     bigint not null default 0 check (balance >= 0),
    updated_at  timestamptz not null default now()
);

-- SePay ---------------------------------------------------------------------------------------

create table sepay_connections (
    id                        uuid primary key default gen_random_uuid(),
    ws_id                     uuid not null unique references workspaces (id) on delete cascade,
    status                    text not null check (status in ('active', 'revoked', 'error')),
    access_token_ciphertext   bytea,
    refresh_token_ciphertext  bytea,
    scopes                    text[] not null default '{}',
    access_token_expires_at   timestamptz,
    last_error                text,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);

create table sepay_wallet_links (
    id                     uuid primary key default gen_random_uuid(),
    ws_id                  uuid not null references workspaces (id) on delete cascade,
    connection_id          uuid references sepay_connections (id) on delete set null,
    wallet_id              uuid,
    sepay_bank_account_id  text,
    account_number         text not null,
    sub_account            text,
    bank_short_name        text,
    holder_name            text,
    label                  text,
    active                 boolean not null default true,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),
    foreign key (ws_id, wallet_id) references wallets (ws_id, id)
);
-- one link per (workspace, account number, sub account); a missing sub account is its own value
create unique index sepay_wallet_links_account
    on sepay_wallet_links (ws_id, account_number, (coalesce(sub_account, '')));

create table sepay_webhook_endpoints (
    id                uuid primary key default gen_random_uuid(),
    ws_id             uuid not null references workspaces (id) on delete cascade,
    wallet_id         uuid,
    label             text not null default '',
    token_hash        bytea not null unique,
    token_prefix      text not null,
    api_key_hash      bytea not null,
    sepay_webhook_id  bigint,
    bank_account_id   text,
    status            text not null default 'active' check (status in ('active', 'rotating', 'revoked')),
    grace_until       timestamptz,
    last_used_at      timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    foreign key (ws_id, wallet_id) references wallets (ws_id, id),
    unique (ws_id, id)
);

-- An endpoint's workspace never changes: its events would otherwise drift across workspaces.
create function sepay_endpoint_ws_immutable() returns trigger language plpgsql as $$
begin
    if new.ws_id is distinct from old.ws_id then
        raise exception 'sepay_webhook_endpoints.ws_id is immutable (endpoint %)', old.id
            using errcode = 'integrity_constraint_violation';
    end if;
    return new;
end;
$$;

create trigger sepay_webhook_endpoints_ws_immutable
    before update of ws_id on sepay_webhook_endpoints
    for each row execute function sepay_endpoint_ws_immutable();

create table sepay_webhook_events (
    id                      bigint generated always as identity primary key,
    ws_id                   uuid not null references workspaces (id) on delete cascade,
    endpoint_id             uuid,
    source                  text not null check (source in ('webhook', 'reconciliation', 'replay')),
    sepay_transaction_id    bigint,
    dedupe_key              text not null,
    payload                 jsonb,
    -- a body that is not a JSON object is kept verbatim, so nothing authenticated is lost
    raw_body                text,
    status                  text not null default 'received'
                            check (status in ('received', 'processed', 'failed', 'duplicate')),
    failure_reason          text,
    failure_detail          text,
    -- attempts: times the event was opened for processing; delivery_count: times it was delivered
    attempts                integer not null default 1,
    delivery_count          integer not null default 1,
    received_at             timestamptz not null default now(),
    last_received_at        timestamptz not null default now(),
    -- when the current processing attempt began: the stale-TTL clock
    opened_at               timestamptz not null default now(),
    published_at            timestamptz,
    processed_at            timestamptz,
    wallet_id               uuid,
    created_transaction_id  uuid references wallet_transactions (id),
    check (payload is not null or raw_body is not null),
    foreign key (ws_id, endpoint_id) references sepay_webhook_endpoints (ws_id, id),
    unique (ws_id, dedupe_key)
);
-- the relay's scan: received rows, oldest publish first
create index sepay_webhook_events_relay on sepay_webhook_events (published_at nulls first, opened_at)
    where status = 'received';
create index sepay_webhook_events_ws_recent on sepay_webhook_events (ws_id, id desc);

create table ai_credit_reservations (
    id          uuid primary key default gen_random_uuid(),
    ws_id       uuid not null references workspaces (id) on delete cascade,
    event_id    bigint not null references sepay_webhook_events (id) on delete cascade,
    purpose     text not null,
    amount      bigint not null check (amount > 0),
    status      text not null default 'reserved' check (status in ('reserved', 'committed', 'released')),
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    unique (event_id, purpose)
);

-- Fallback categories: concurrent workers must agree on one id per (ws, name, direction), so the
-- lookup-or-create runs under a transaction-scoped advisory lock on exactly that triple.
create function ensure_fallback_category(p_ws_id uuid, p_name text, p_is_expense boolean)
returns uuid language plpgsql as $$
declare
    v_id uuid;
begin
    perform pg_advisory_xact_lock(
        hashtextextended(p_ws_id::text || '/' || p_name || '/' || p_is_expense::text, 0));
    select id into v_id from transaction_categories
        where ws_id = p_ws_id and name = p_name and is_expense = p_is_expense;
    if v_id is null then
        insert into transaction_categories (ws_id, name, is_expense)
            values (p_ws_id, p_name, p_is_expense)
            returning id into v_id;
    end if;
    return v_id;
end;
$$;
