-- Currency integrity: a wallet's currency is an upper-case ISO 4217 code (the list is checked by
-- sepay-core when a wallet is made; the database keeps the shape), and a wallet a provider books
-- into holds that provider's currency: VND for SePay's accounts and endpoints, EUR for Striga's.

update wallets set currency = upper(trim(currency)) where currency <> upper(trim(currency));
alter table wallets add constraint wallets_currency_iso_4217 check (currency ~ '^[A-Z]{3}$');

-- The currency a provider books.
create function provider_currency(provider text) returns text
language sql immutable as $$
    select case provider when 'sepay' then 'VND' when 'striga' then 'EUR' end
$$;

-- Links and endpoints made before this check that point at a wallet of another currency are
-- reported here (a WARNING in the migration's output) and not kept: the link is deactivated and
-- the endpoint's own wallet cleared, so such deliveries fail visibly (`wallet_not_linked`) until
-- an admin links a wallet of the right currency.
do $$
declare
    r record;
begin
    for r in
        select l.id, l.ws_id, l.account_number, l.wallet_id, w.currency
          from sepay_wallet_links l join wallets w on w.id = l.wallet_id
         where l.active and w.currency <> 'VND'
    loop
        raise warning 'SePay account % of workspace % was linked to wallet % holding %: link deactivated (SePay books VND)',
            r.account_number, r.ws_id, r.wallet_id, r.currency;
        update sepay_wallet_links set active = false, updated_at = now() where id = r.id;
    end loop;
    for r in
        select e.id, e.ws_id, e.provider, e.wallet_id, w.currency
          from sepay_webhook_endpoints e join wallets w on w.id = e.wallet_id
         where w.currency <> provider_currency(e.provider)
    loop
        raise warning '% endpoint % of workspace % booked into wallet % holding %: its wallet cleared (% books %)',
            r.provider, r.id, r.ws_id, r.wallet_id, r.currency, r.provider, provider_currency(r.provider);
        update sepay_webhook_endpoints set wallet_id = null where id = r.id;
    end loop;
end
$$;

-- From now on the store refuses such a link or endpoint, whichever path writes it.
create function check_sepay_link_currency() returns trigger
language plpgsql as $$
declare
    held text;
begin
    if new.wallet_id is null or not new.active then
        return new;
    end if;
    select currency into held from wallets where id = new.wallet_id;
    if held is distinct from 'VND' then
        raise exception 'a SePay account books VND: wallet % holds %', new.wallet_id, held
            using errcode = 'check_violation';
    end if;
    return new;
end
$$;

create trigger sepay_wallet_links_currency
    before insert or update of wallet_id, active on sepay_wallet_links
    for each row execute function check_sepay_link_currency();

create function check_endpoint_wallet_currency() returns trigger
language plpgsql as $$
declare
    held text;
begin
    if new.wallet_id is null then
        return new;
    end if;
    select currency into held from wallets where id = new.wallet_id;
    if held is distinct from provider_currency(new.provider) then
        raise exception 'a % endpoint books %: wallet % holds %',
            new.provider, provider_currency(new.provider), new.wallet_id, held
            using errcode = 'check_violation';
    end if;
    return new;
end
$$;

create trigger sepay_webhook_endpoints_wallet_currency
    before insert or update of wallet_id, provider on sepay_webhook_endpoints
    for each row execute function check_endpoint_wallet_currency();

-- A wallet's currency is fixed once it books: changing it would leave its links wrong.
create function forbid_currency_change() returns trigger
language plpgsql as $$
begin
    if new.currency is distinct from old.currency then
        raise exception 'a wallet''s currency cannot change (wallet %)', old.id using errcode = 'check_violation';
    end if;
    return new;
end
$$;

create trigger wallets_currency_fixed
    before update of currency on wallets
    for each row execute function forbid_currency_change();
