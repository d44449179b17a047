//! Rules, learning history, categories and AI credit reservations.

use crate::error::{StoreError, StoreResult};
use sepay_core::classify::RuleDraft;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub position: i32,
    pub name: String,
    pub match_all: bool,
    pub conditions: Value,
    pub category_id: Option<Uuid>,
    pub category_name: Option<String>,
    pub tags: Vec<String>,
    pub stop_processing: bool,
}

impl RuleRow {
    /// The stored conditions, parsed.
    fn parsed_conditions(&self) -> Result<Vec<sepay_core::classify::Condition>, serde_json::Error> {
        serde_json::from_value(self.conditions.clone())
    }

    /// The conditions as an admin writes them (`content contains grab`).
    pub fn condition_texts(&self) -> Vec<String> {
        match self.parsed_conditions() {
            Ok(conditions) => conditions.iter().map(ToString::to_string).collect(),
            Err(_) => vec![self.conditions.to_string()],
        }
    }

    /// The row as the rule the processor applies; none when its conditions do not parse (the
    /// admin page and `sepayctl` parse a rule before storing it, so only a row written by hand
    /// can be one).
    pub fn rule(&self) -> Option<sepay_core::classify::Rule<Uuid>> {
        Some(sepay_core::classify::Rule {
            match_all: self.match_all,
            conditions: self.parsed_conditions().ok()?,
            category: self.category_id,
            tags: self.tags.clone(),
            stop_processing: self.stop_processing,
        })
    }
}

/// Active rules in order.
/// Where changes to a workspace's booking settings (its wallets and links, endpoints' wallets,
/// rules, categories) are announced; the payload is the workspace id (migration 13).
pub const BOOKING_SETTINGS_CHANNEL: &str = "sepay_booking_settings";

/// A connection listening on [`BOOKING_SETTINGS_CHANNEL`].
pub async fn listen_for_booking_settings(pool: &PgPool) -> StoreResult<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(BOOKING_SETTINGS_CHANNEL).await?;
    Ok(listener)
}

pub async fn rules(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(
        "select r.id, r.position, r.name, r.match_all, r.conditions, r.category_id, c.name as category_name, r.tags,
                r.stop_processing
           from classification_rules r left join transaction_categories c on c.id = r.category_id
          where r.ws_id = $1 and r.active order by r.position, r.created_at",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

pub struct NewRule<'a> {
    pub ws_id: Uuid,
    pub name: &'a str,
    pub match_all: bool,
    pub conditions: &'a Value,
    pub category_id: Option<Uuid>,
    pub tags: &'a [String],
    pub stop_processing: bool,
}

/// Appends a rule after the workspace's last one.
pub async fn add_rule(pool: &PgPool, r: &NewRule<'_>) -> StoreResult<Uuid> {
    Ok(sqlx::query_scalar(
        "insert into classification_rules (ws_id, position, name, match_all, conditions, category_id, tags, stop_processing)
         values ($1, (select coalesce(max(position), 0) + 1 from classification_rules where ws_id = $1), $2, $3, $4, $5, $6, $7)
         returning id",
    )
    .bind(r.ws_id)
    .bind(r.name)
    .bind(r.match_all)
    .bind(r.conditions)
    .bind(r.category_id)
    .bind(r.tags)
    .bind(r.stop_processing)
    .fetch_one(pool)
    .await?)
}

/// Appends an admin's checked rule, creating its category if missing.
pub async fn create_rule(pool: &PgPool, ws_id: Uuid, draft: &RuleDraft) -> StoreResult<Uuid> {
    let category_id = match &draft.category {
        Some((name, is_expense)) => Some(category(pool, ws_id, name, *is_expense).await?),
        None => None,
    };
    let conditions =
        serde_json::to_value(&draft.conditions).map_err(|e| StoreError::Rejected { message: e.to_string() })?;
    add_rule(
        pool,
        &NewRule {
            ws_id,
            name: &draft.name,
            match_all: draft.match_all,
            conditions: &conditions,
            category_id,
            tags: &draft.tags,
            stop_processing: draft.stop_processing,
        },
    )
    .await
}

/// Deletes a rule; with `ws_id`, only one of that workspace (an admin page's scope).
pub async fn delete_rule(pool: &PgPool, ws_id: Option<Uuid>, id: Uuid) -> StoreResult<()> {
    let deleted = sqlx::query("delete from classification_rules where id = $1 and ($2::uuid is null or ws_id = $2)")
        .bind(id)
        .bind(ws_id)
        .execute(pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound("rule"));
    }
    Ok(())
}

/// Swaps a rule with its neighbour above (`up`) or below, in one transaction; at the edge it
/// stays where it is.
pub async fn move_rule(pool: &PgPool, ws_id: Uuid, id: Uuid, up: bool) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    // the workspace's rules, locked, so two moves at once cannot interleave
    let order: Vec<(Uuid, i32)> = sqlx::query_as(
        "select id, position from classification_rules where ws_id = $1 and active
          order by position, created_at for update",
    )
    .bind(ws_id)
    .fetch_all(&mut *tx)
    .await?;
    let at = order
        .iter()
        .position(|(rule, _)| *rule == id)
        .ok_or(StoreError::NotFound("rule"))?;
    let other = match up {
        true => at.checked_sub(1),
        false => Some(at + 1).filter(|i| *i < order.len()),
    };
    if let Some(other) = other {
        // positions renumbered 1..n first, so equal positions still swap
        for (i, (rule, _)) in order.iter().enumerate() {
            let position = match i {
                i if i == at => other,
                i if i == other => at,
                i => i,
            } as i32
                + 1;
            sqlx::query("update classification_rules set position = $2 where id = $1")
                .bind(rule)
                .bind(position)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The workspace's tag names, for a model to choose among.
pub async fn tags(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("select name from transaction_tags where ws_id = $1 order by name limit 200")
            .bind(ws_id)
            .fetch_all(pool)
            .await?,
    )
}

/// A category by name and direction, created if missing (one canonical id under concurrency).
pub async fn category(pool: &PgPool, ws_id: Uuid, name: &str, is_expense: bool) -> StoreResult<Uuid> {
    crate::ledger::ensure_fallback_category(pool, ws_id, name, is_expense).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub is_expense: bool,
}

/// The workspace's categories a model may choose from (fallbacks excluded).
pub async fn categories(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<Category>> {
    Ok(sqlx::query_as(
        "select id, name, is_expense from transaction_categories
          where ws_id = $1 and name not like 'Uncategorized %' order by name",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

/// Categorized bookings to learn from: newest first, fallbacks excluded.
pub async fn history(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<(String, Uuid)>> {
    Ok(sqlx::query_as(
        "select t.description, t.category_id from wallet_transactions t
          where t.ws_id = $1 and t.category_id is not null and coalesce(t.classified_by, '') <> 'fallback'
          order by t.created_at desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn grant_credits(pool: &PgPool, ws_id: Uuid, amount: i64) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "insert into workspace_ai_credits (ws_id, balance) values ($1, $2)
         on conflict (ws_id) do update set balance = workspace_ai_credits.balance + excluded.balance, updated_at = now()
         returning balance",
    )
    .bind(ws_id)
    .bind(amount)
    .fetch_one(pool)
    .await?)
}

/// The outcome of asking for credits before a model call.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Credits held: call the model, then commit or release.
    Reserved(Uuid),
    /// This (event, purpose) already paid: reuse its result, call nothing.
    Paid(Option<Value>),
    /// Another attempt holds the reservation right now.
    InFlight,
    /// Not enough credits: no call.
    NoCredits,
}

/// Reserves `amount` credits for (event, purpose), idempotently; never holds a lock afterwards.
pub async fn reserve(
    pool: &PgPool,
    ws_id: Uuid,
    event_id: i64,
    purpose: &str,
    amount: i64,
    ttl_secs: f64,
) -> StoreResult<Reservation> {
    let mut tx = pool.begin().await?;
    let existing: Option<(Uuid, String, Option<Value>)> = sqlx::query_as(
        "select id, status, result from ai_credit_reservations where event_id = $1 and purpose = $2 for update",
    )
    .bind(event_id)
    .bind(purpose)
    .fetch_optional(&mut *tx)
    .await?;
    match &existing {
        Some((_, status, result)) if status == "committed" => return Ok(Reservation::Paid(result.clone())),
        Some((_, status, _)) if status == "reserved" => return Ok(Reservation::InFlight),
        _ => {}
    }
    let debited = sqlx::query(
        "update workspace_ai_credits set balance = balance - $2, updated_at = now() where ws_id = $1 and balance >= $2",
    )
    .bind(ws_id)
    .bind(amount)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if debited == 0 {
        return Ok(Reservation::NoCredits);
    }
    let id: Uuid = sqlx::query_scalar(
        "insert into ai_credit_reservations (ws_id, event_id, purpose, amount, status, expires_at)
         values ($1, $2, $3, $4, 'reserved', now() + make_interval(secs => $5))
         on conflict (event_id, purpose) do update set status = 'reserved', amount = excluded.amount,
            expires_at = excluded.expires_at, result = null, updated_at = now()
         returning id",
    )
    .bind(ws_id)
    .bind(event_id)
    .bind(purpose)
    .bind(amount)
    .bind(ttl_secs)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Reservation::Reserved(id))
}

/// The call succeeded: the credits are spent and its result kept.
pub async fn commit(pool: &PgPool, id: Uuid, result: &Value) -> StoreResult<bool> {
    Ok(sqlx::query("update ai_credit_reservations set status = 'committed', result = $2, updated_at = now() where id = $1 and status = 'reserved'")
        .bind(id)
        .bind(result)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// The call failed or timed out: the credits go back.
pub async fn release(pool: &PgPool, id: Uuid) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let released: Option<(Uuid, i64)> = sqlx::query_as(
        "update ai_credit_reservations set status = 'released', updated_at = now()
          where id = $1 and status = 'reserved' returning ws_id, amount",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((ws_id, amount)) = released {
        sqlx::query("update workspace_ai_credits set balance = balance + $2, updated_at = now() where ws_id = $1")
            .bind(ws_id)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(released.is_some())
}

/// Releases reservations whose holder died (past `expires_at`), refunding them. Returns how many.
pub async fn release_expired(pool: &PgPool) -> StoreResult<u64> {
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "select id from ai_credit_reservations where status = 'reserved' and expires_at < now() limit 1000",
    )
    .fetch_all(pool)
    .await?;
    let mut n = 0;
    for id in expired {
        n += release(pool, id).await? as u64;
    }
    Ok(n)
}

/// (balance, reserved, committed, released) of a workspace: the ledger must balance.
pub async fn credit_ledger(pool: &PgPool, ws_id: Uuid) -> StoreResult<(i64, i64, i64, i64)> {
    Ok(sqlx::query_as(
        "select coalesce((select balance from workspace_ai_credits where ws_id = $1), 0),
                coalesce(sum(amount) filter (where status = 'reserved'), 0)::bigint,
                coalesce(sum(amount) filter (where status = 'committed'), 0)::bigint,
                coalesce(sum(amount) filter (where status = 'released'), 0)::bigint
           from ai_credit_reservations where ws_id = $1",
    )
    .bind(ws_id)
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(name: &str, conditions: serde_json::Value) -> RuleRow {
        RuleRow {
            id: Uuid::new_v4(),
            position: 0,
            name: name.into(),
            match_all: true,
            conditions,
            category_id: Some(Uuid::new_v4()),
            category_name: None,
            tags: vec![name.into()],
            stop_processing: false,
        }
    }

    #[test]
    fn rows_compile_in_order_and_a_row_that_does_not_parse_is_skipped() {
        let rows = [
            row("grab", json!([{"field": "content", "op": "contains", "value": "grab"}])),
            row("by hand", json!({"not": "a list of conditions"})),
            row("rent", json!([{"field": "content", "op": "contains", "value": "rent"}])),
        ];
        let rules: Vec<_> = rows.iter().filter_map(RuleRow::rule).collect();
        let tags: Vec<&str> = rules.iter().map(|r| r.tags[0].as_str()).collect();
        assert_eq!(tags, ["grab", "rent"]);
        assert_eq!(rules[1].category, rows[2].category_id);
        assert_eq!(rules[0].conditions.len(), 1);
    }
}
