//! A workspace's last days at a glance (the overview page): deliveries, failures, bookings and
//! the money in and out per day, days counted in the workspace's time zone.

use crate::error::StoreResult;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sepay_core::EventStatus;
use sqlx::PgPool;
use uuid::Uuid;

/// One day's events: deliveries received (repeats included) and events that failed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventDay {
    pub day: NaiveDate,
    pub deliveries: i64,
    pub failed: i64,
}

/// One day's bookings in one currency: how many, and the sums in and out (out is negative).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingDay {
    pub day: NaiveDate,
    pub currency: String,
    pub booked: i64,
    pub money_in: Decimal,
    pub money_out: Decimal,
}

/// The last `days` days of events, by the day they were received in `time_zone`.
pub async fn event_days(pool: &PgPool, ws_id: Uuid, time_zone: &str, days: i32) -> StoreResult<Vec<EventDay>> {
    Ok(sqlx::query_as(
        "select (received_at at time zone $2)::date as day,
                coalesce(sum(delivery_count), 0)::int8 as deliveries,
                count(*) filter (where status = $4) as failed
           from sepay_webhook_events
          where ws_id = $1 and received_at >= now() - make_interval(days => $3 + 1)
          group by 1 order by 1",
    )
    .bind(ws_id)
    .bind(time_zone)
    .bind(days)
    .bind(EventStatus::Failed.as_str())
    .fetch_all(pool)
    .await?)
}

/// The last `days` days of bookings per currency, by the day they were taken in `time_zone`.
pub async fn booking_days(pool: &PgPool, ws_id: Uuid, time_zone: &str, days: i32) -> StoreResult<Vec<BookingDay>> {
    Ok(sqlx::query_as(
        "select (t.taken_at at time zone $2)::date as day, w.currency, count(*) as booked,
                coalesce(sum(t.amount) filter (where t.amount > 0), 0) as money_in,
                coalesce(sum(t.amount) filter (where t.amount < 0), 0) as money_out
           from wallet_transactions t join wallets w on w.id = t.wallet_id
          where t.ws_id = $1 and t.taken_at >= now() - make_interval(days => $3 + 1)
          group by 1, 2 order by 1, 2",
    )
    .bind(ws_id)
    .bind(time_zone)
    .bind(days)
    .fetch_all(pool)
    .await?)
}
