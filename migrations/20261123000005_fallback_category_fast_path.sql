-- The fallback category exists after its first use: look it up without the advisory lock, which
-- otherwise serialises every booking transaction of a workspace until commit. The lock is still
-- taken (and the lookup repeated under it) when the category is missing.
create or replace function ensure_fallback_category(p_ws_id uuid, p_name text, p_is_expense boolean)
returns uuid language plpgsql as $$
declare
    v_id uuid;
begin
    select id into v_id from transaction_categories
        where ws_id = p_ws_id and name = p_name and is_expense = p_is_expense;
    if v_id is not null then
        return v_id;
    end if;
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
