//! The overview: the last 14 days' deliveries, bookings, failures and money, and what needs an
//! admin (the connection, open balance gaps, webhook health).

use super::{Admin, AppRef, Result};
use crate::chart;
use crate::pages;
use axum::extract::State;
use axum::response::Response;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sepay_store::{balances, connections, endpoints, overview, provisioning, workspaces};

/// Days the overview covers, today included.
const DAYS: i32 = 14;

/// One day's counts.
pub struct DayCounts {
    pub day: NaiveDate,
    pub deliveries: i64,
    pub booked: i64,
    pub failed: i64,
}

pub(super) async fn page(State(state): State<AppRef>, admin: Admin) -> Result<Response> {
    let (db, ws_id) = (&state.db, admin.ws_id);
    let ws = workspaces::get_workspace(db, ws_id).await?;
    let tz = pages::Zone::named(&ws.time_zone);
    let events = overview::event_days(db, ws_id, tz.name(), DAYS).await?;
    let money = overview::booking_days(db, ws_id, tz.name(), DAYS).await?;
    let today = chrono::Utc::now().with_timezone(&tz.0).date_naive();
    let days: Vec<NaiveDate> = (0..DAYS as i64)
        .rev()
        .map(|back| today - chrono::Duration::days(back))
        .collect();
    let counts: Vec<DayCounts> = days
        .iter()
        .map(|&day| {
            let e = events.iter().find(|e| e.day == day);
            DayCounts {
                day,
                deliveries: e.map_or(0, |e| e.deliveries),
                failed: e.map_or(0, |e| e.failed),
                booked: money.iter().filter(|m| m.day == day).map(|m| m.booked).sum(),
            }
        })
        .collect();
    let activity = chart::draw(
        &counts
            .iter()
            .map(|c| chart::Day {
                day: c.day,
                values: [
                    ("deliveries", c.deliveries),
                    ("booked", c.booked),
                    ("failures", c.failed),
                ]
                .into_iter()
                .map(|(series, n)| chart::Value {
                    series,
                    value: n as f64,
                    title: format!("{}: {n} {series}", c.day.format("%b %-d")),
                })
                .collect(),
            })
            .collect::<Vec<_>>(),
    );
    let money: Vec<_> = money.into_iter().filter(|m| m.day >= days[0]).collect();
    // one money chart per currency booked in the period (VND and EUR never share a scale)
    // rows are by day, then currency: sorted before the repeats can go
    let mut currencies: Vec<String> = money.iter().map(|m| m.currency.clone()).collect();
    currencies.sort();
    currencies.dedup();
    let money_charts = currencies
        .into_iter()
        .map(|currency| {
            let bars = days
                .iter()
                .map(|&day| {
                    let m = money.iter().find(|m| m.day == day && m.currency == currency);
                    let (money_in, money_out) = m.map_or((Decimal::ZERO, Decimal::ZERO), |m| (m.money_in, m.money_out));
                    chart::Day {
                        day,
                        values: [("in", money_in), ("out", money_out)]
                            .into_iter()
                            .map(|(series, amount)| chart::Value {
                                series,
                                value: amount.to_f64().unwrap_or(0.0),
                                title: format!(
                                    "{}: {} {series}",
                                    day.format("%b %-d"),
                                    sepay_core::display::amount(amount, &currency)
                                ),
                            })
                            .collect(),
                    }
                })
                .collect::<Vec<_>>();
            (currency, chart::draw(&bars))
        })
        .collect::<Vec<_>>();
    let (open_gaps, flagged_gaps) = balances::unclosed_gap_counts(db, ws_id).await?;
    let endpoints = endpoints::list(db, Some(ws_id)).await?;
    let last_verified = endpoints.iter().filter_map(|e| e.last_verified_at).max();
    let since = chrono::Utc::now() - chrono::Duration::days(DAYS as i64);
    let repairs = provisioning::repairs_since(db, ws_id, since).await?;
    let connection = pages::connection_state(connections::connection_view(db, ws_id).await?.as_ref());
    Ok(pages::render(&pages::Overview {
        ws_id,
        ws_name: &ws.name,
        tz,
        days: &counts,
        activity,
        money_charts: &money_charts,
        money: &money,
        open_gaps,
        flagged_gaps,
        live_webhooks: provisioning::live_endpoint_count(db, ws_id).await?,
        last_verified,
        repairs,
        connection,
    }))
}
