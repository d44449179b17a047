//! Striga's own records: which wallet an account books into, payout lifecycles, balance
//! mismatches. Events, bookings and classification are the providers' shared tables.

use crate::endpoints::CreatedStrigaEndpoint;
use crate::error::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sepay_core::Provider;
use sepay_core::striga::{CURRENCY, PayoutStatus};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A Striga endpoint: a URL token of ours, and Striga's API key (which signs each body) sealed by
/// the caller with [`crate::endpoints::signing_key_aad`]. The token is shown once, in the result.
pub async fn create_endpoint(
    pool: &PgPool,
    public_base_url: &str,
    ws_id: Uuid,
    wallet_id: Option<Uuid>,
    label: &str,
    signing_key_ciphertext: &[u8],
) -> StoreResult<CreatedStrigaEndpoint> {
    if let Some(wallet_id) = wallet_id {
        check_wallet(pool, ws_id, wallet_id).await?;
    }
    let created = crate::endpoints::create_with_new_secrets(
        pool,
        public_base_url,
        ws_id,
        wallet_id,
        label,
        Provider::Striga,
        Some(signing_key_ciphertext),
    )
    .await?;
    Ok(created.into())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WalletLink {
    pub striga_ref: String,
    pub wallet_id: Uuid,
    pub wallet_name: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// Books the events naming `striga_ref` (an `accountId`, or a `syncedOwnerId`) into `wallet_id`;
/// a second call moves the link.
pub async fn link_wallet(pool: &PgPool, ws_id: Uuid, striga_ref: &str, wallet_id: Uuid) -> StoreResult<()> {
    let striga_ref = striga_ref.trim();
    if striga_ref.is_empty() || striga_ref.len() > 128 {
        return Err(StoreError::Rejected {
            message: "a Striga account or owner id is 1 to 128 characters".into(),
        });
    }
    check_wallet(pool, ws_id, wallet_id).await?;
    sqlx::query(
        "insert into striga_wallet_links (ws_id, striga_ref, wallet_id) values ($1, $2, $3)
         on conflict (ws_id, striga_ref) do update set wallet_id = excluded.wallet_id",
    )
    .bind(ws_id)
    .bind(striga_ref)
    .bind(wallet_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn wallet_links(pool: &PgPool, ws_id: Uuid) -> StoreResult<Vec<WalletLink>> {
    Ok(sqlx::query_as(
        "select l.striga_ref, l.wallet_id, w.name as wallet_name, w.currency, l.created_at
           from striga_wallet_links l join wallets w on w.id = l.wallet_id
          where l.ws_id = $1 order by l.created_at",
    )
    .bind(ws_id)
    .fetch_all(pool)
    .await?)
}

/// The wallet an event books into, with its currency: where the other half of its payout is
/// already booked (`counterpart_ref`), else the link of the first of `refs` that has one (most
/// specific first), else the endpoint's wallet.
pub async fn wallet_for(
    pool: &PgPool,
    ws_id: Uuid,
    endpoint_id: Option<Uuid>,
    refs: &[&str],
    counterpart_ref: Option<&str>,
) -> StoreResult<Option<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "with chosen as (
           select coalesce(
             (select wallet_id from wallet_transactions where ws_id = $1 and external_ref = $4),
             (select l.wallet_id from striga_wallet_links l
                join unnest($2::text[]) with ordinality as r(ref, n) on r.ref = l.striga_ref
               where l.ws_id = $1 order by r.n limit 1),
             (select wallet_id from sepay_webhook_endpoints where id = $3 and ws_id = $1)) as wallet_id)
         select w.id, w.currency from chosen join wallets w on w.id = chosen.wallet_id",
    )
    .bind(ws_id)
    .bind(refs)
    .bind(endpoint_id)
    .bind(counterpart_ref)
    .fetch_optional(pool)
    .await?)
}

/// Striga books EUR: a wallet of another currency (or of another workspace) is refused.
async fn check_wallet(pool: &PgPool, ws_id: Uuid, wallet_id: Uuid) -> StoreResult<()> {
    let currency: Option<String> = sqlx::query_scalar("select currency from wallets where id = $1 and ws_id = $2")
        .bind(wallet_id)
        .bind(ws_id)
        .fetch_optional(pool)
        .await?;
    match currency.as_deref() {
        Some(CURRENCY) => Ok(()),
        Some(other) => Err(StoreError::Rejected {
            message: format!("Striga books {CURRENCY}; wallet {wallet_id} holds {other}"),
        }),
        None => Err(StoreError::NotFound("wallet")),
    }
}

/// Adds one event's part to its payout's progress (`StrigaEventType::payout_progress`): both
/// columns only grow, so any order of the same events, repeated or concurrent, ends the same.
pub async fn record_payout_progress(
    pool: &PgPool,
    ws_id: Uuid,
    payout_id: &str,
    initiated: bool,
    outcome_rank: i16,
) -> StoreResult<()> {
    sqlx::query(
        "insert into striga_payouts (ws_id, payout_id, initiated, outcome_rank) values ($1, $2, $3, $4)
         on conflict (ws_id, payout_id) do update
            set initiated = striga_payouts.initiated or excluded.initiated,
                outcome_rank = greatest(striga_payouts.outcome_rank, excluded.outcome_rank),
                updated_at = now()
          where not striga_payouts.initiated and excluded.initiated
             or striga_payouts.outcome_rank < excluded.outcome_rank",
    )
    .bind(ws_id)
    .bind(payout_id)
    .bind(initiated)
    .bind(outcome_rank)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Payout {
    pub payout_id: String,
    pub status: &'static str,
    /// The booked debit and reversal (`None`: not booked, or not yet).
    pub debit: Option<Decimal>,
    pub reversal: Option<Decimal>,
    pub updated_at: DateTime<Utc>,
}

/// Newest first.
pub async fn payouts(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<Payout>> {
    let rows: Vec<(String, bool, i16, Option<Decimal>, Option<Decimal>, DateTime<Utc>)> = sqlx::query_as(
        "select p.payout_id, p.initiated, p.outcome_rank,
                (select amount from wallet_transactions
                  where ws_id = p.ws_id and external_ref = 'striga:' || p.payout_id || ':payout'),
                (select amount from wallet_transactions
                  where ws_id = p.ws_id and external_ref = 'striga:' || p.payout_id || ':reversal'),
                p.updated_at
           from striga_payouts p where p.ws_id = $1 order by p.updated_at desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(payout_id, initiated, rank, debit, reversal, updated_at)| Payout {
            status: PayoutStatus::from_progress(initiated, rank).map_or("unknown", PayoutStatus::as_str),
            payout_id,
            debit,
            reversal,
            updated_at,
        })
        .collect())
}

/// Notes an event whose balances do not add up (once per event).
pub async fn record_balance_mismatch(
    pool: &PgPool,
    event_id: i64,
    ws_id: Uuid,
    expected: Decimal,
    actual: Decimal,
) -> StoreResult<()> {
    sqlx::query(
        "insert into striga_balance_mismatches (event_id, ws_id, expected, actual) values ($1, $2, $3, $4)
         on conflict (event_id) do nothing",
    )
    .bind(event_id)
    .bind(ws_id)
    .bind(expected)
    .bind(actual)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BalanceMismatch {
    pub event_id: i64,
    pub expected: Decimal,
    pub actual: Decimal,
    pub recorded_at: DateTime<Utc>,
}

pub async fn balance_mismatches(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<BalanceMismatch>> {
    Ok(sqlx::query_as(
        "select event_id, expected, actual, recorded_at from striga_balance_mismatches
          where ws_id = $1 order by event_id desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A Striga event that reports a fee, as sent, with the fee row booked apart if any.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StrigaFee {
    pub event_id: i64,
    pub dedupe_key: String,
    /// `feeEur`, in cents.
    pub fee_eur: Option<String>,
    pub fee_base_currency: Option<String>,
    pub exchange_rate: Option<String>,
    /// The fee row's amount, where the balances showed the fee outside the debit.
    pub fee_row: Option<Decimal>,
}

/// Newest first: events whose `feeEur` or `nonFpFeeBaseCurrency` is not zero.
pub async fn fees(pool: &PgPool, ws_id: Uuid, limit: i64) -> StoreResult<Vec<StrigaFee>> {
    Ok(sqlx::query_as(
        "select e.id as event_id, e.dedupe_key, e.payload->>'feeEur' as fee_eur,
                e.payload->>'nonFpFeeBaseCurrency' as fee_base_currency,
                e.payload->>'exchangeRate' as exchange_rate, t.amount as fee_row
           from sepay_webhook_events e
           left join wallet_transactions t on t.ws_id = e.ws_id and t.external_ref = e.dedupe_key || ':fee'
          where e.ws_id = $1 and e.provider = 'striga'
            and (coalesce(e.payload->>'feeEur', '0') not in ('0', '')
                 or coalesce(e.payload->>'nonFpFeeBaseCurrency', '0') not in ('0', ''))
          order by e.id desc limit $2",
    )
    .bind(ws_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
