-- The processor keeps each workspace's booking settings in memory (which wallet an account or an
-- endpoint books into, the classification rules and their categories), so an event costs no
-- lookups. Every change that can alter them is announced on channel `sepay_booking_settings`
-- (payload: the workspace id); the processor forgets that workspace's settings.

create function sepay_booking_settings_announce() returns trigger language plpgsql as $$
begin
    perform pg_notify('sepay_booking_settings', coalesce(new.ws_id, old.ws_id)::text);
    return null;
end;
$$;

create trigger sepay_wallet_links_announce
    after insert or update or delete on sepay_wallet_links
    for each row execute function sepay_booking_settings_announce();

create trigger wallets_announce
    after insert or update or delete on wallets
    for each row execute function sepay_booking_settings_announce();

create trigger classification_rules_announce
    after insert or update or delete on classification_rules
    for each row execute function sepay_booking_settings_announce();

create trigger transaction_categories_announce
    after insert or update or delete on transaction_categories
    for each row execute function sepay_booking_settings_announce();

-- an endpoint's wallet decides where its deliveries book (`last_used_at` does not)
create trigger sepay_webhook_endpoints_settings_insert_delete
    after insert or delete on sepay_webhook_endpoints
    for each row execute function sepay_booking_settings_announce();

create trigger sepay_webhook_endpoints_settings_update
    after update on sepay_webhook_endpoints
    for each row when (old.wallet_id is distinct from new.wallet_id)
    execute function sepay_booking_settings_announce();
