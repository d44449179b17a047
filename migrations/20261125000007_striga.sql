-- A second provider, Striga (SEPA). Endpoints and events are shared by the providers: the same
-- token lookup, dedupe, retry rules, relay and booking; `provider` says whose rules read them.

alter table sepay_webhook_endpoints
    add column provider text not null default 'sepay' check (provider in ('sepay', 'striga')),
    -- Striga signs each body with the API key (HMAC-SHA256): the key itself is needed, sealed
    -- with the token keyring (SEPAY_TOKEN_KEYS); SePay's key is only ever compared, so hashed.
    add column signing_key_ciphertext bytea,
    add check (provider = 'sepay' or signing_key_ciphertext is not null);

alter table sepay_webhook_events
    add column provider text not null default 'sepay' check (provider in ('sepay', 'striga'));

-- a change of signing key alters authentication: announce it to the ingress too
drop trigger sepay_endpoint_announce_update on sepay_webhook_endpoints;
create trigger sepay_endpoint_announce_update
    after update on sepay_webhook_endpoints
    for each row
    when (old.status is distinct from new.status
          or old.grace_until is distinct from new.grace_until
          or old.token_hash is distinct from new.token_hash
          or old.api_key_hash is distinct from new.api_key_hash
          or old.signing_key_ciphertext is distinct from new.signing_key_ciphertext)
    execute function sepay_endpoint_announce();

-- Striga `accountId` (or, for events without one, `syncedOwnerId`) → wallet.
create table striga_wallet_links (
    ws_id       uuid not null references workspaces (id) on delete cascade,
    striga_ref  text not null,
    wallet_id   uuid not null,
    created_at  timestamptz not null default now(),
    primary key (ws_id, striga_ref),
    foreign key (ws_id, wallet_id) references wallets (ws_id, id)
);

-- A payout's lifecycle, folded from its events in whatever order they come: INITIATED seen, and
-- the strongest outcome seen (1 completed < 2 failed < 3 denied). Both only grow, so concurrent
-- and repeated upserts commute.
create table striga_payouts (
    ws_id        uuid not null references workspaces (id) on delete cascade,
    payout_id    text not null,
    initiated    boolean not null default false,
    outcome_rank smallint not null default 0 check (outcome_rank between 0 and 3),
    updated_at   timestamptz not null default now(),
    primary key (ws_id, payout_id)
);

-- Events whose balanceBefore + credit - debit is not their balanceAfter (booked all the same:
-- the amounts are what moved; the mismatch is for a person to look at).
create table striga_balance_mismatches (
    event_id     bigint primary key references sepay_webhook_events (id) on delete cascade,
    ws_id        uuid not null references workspaces (id) on delete cascade,
    expected     numeric not null,
    actual       numeric not null,
    recorded_at  timestamptz not null default now()
);
