-- The ingress keeps the live endpoints in memory, so unknown tokens and wrong keys are refused
-- without a database round trip. Every change that can alter authentication is announced on
-- channel `sepay_endpoints` (payload: the endpoint id); the ingress reloads that one row.
-- `last_used_at` updates are not announced: they do not change who may post.

create function sepay_endpoint_announce() returns trigger language plpgsql as $$
begin
    perform pg_notify('sepay_endpoints', coalesce(new.id, old.id)::text);
    return null;
end;
$$;

create trigger sepay_endpoint_announce_insert_delete
    after insert or delete on sepay_webhook_endpoints
    for each row execute function sepay_endpoint_announce();

create trigger sepay_endpoint_announce_update
    after update on sepay_webhook_endpoints
    for each row
    when (old.status is distinct from new.status
          or old.grace_until is distinct from new.grace_until
          or old.token_hash is distinct from new.token_hash
          or old.api_key_hash is distinct from new.api_key_hash)
    execute function sepay_endpoint_announce();
