//! Wallets: the list, a wallet's statement (running balance, a range of days, keyset paging)
//! and its CSV export.

use super::{Admin, AppRef, Result};
use crate::error::ConnectorError;
use crate::pages;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use sepay_store::{ledger, workspaces};
use serde::Deserialize;
use uuid::Uuid;

/// Lines per statement page.
const STATEMENT_PAGE: i64 = 100;
/// Lines one CSV export holds at most (a longer range is exported in parts).
pub const CSV_MAX_LINES: i64 = 100_000;

/// `/ws/{ws}/wallets`: every wallet with its count and balance.
pub(super) async fn list(State(state): State<AppRef>, admin: Admin) -> Result<Response> {
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let wallets = ledger::wallet_balances(&state.db, admin.ws_id).await?;
    Ok(pages::render(&pages::Wallets {
        ws_id: admin.ws_id,
        ws_name: &ws.name,
        wallets: &wallets,
    }))
}

/// `[from, to)`; an open end is `None`.
type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A range of the workspace's days, as typed (`YYYY-MM-DD`, both included), and the page cursor.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct StatementQuery {
    pub from: String,
    pub to: String,
    pub before: String,
}

impl StatementQuery {
    /// `[from, to)` as instants.
    fn range(&self, zone: pages::Zone) -> std::result::Result<Span, ConnectorError> {
        let day = |field: &str, value: &str| -> std::result::Result<Option<NaiveDate>, ConnectorError> {
            match value.trim() {
                "" => Ok(None),
                v => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| ConnectorError::BadRequest(format!("{field} \"{v}\" is not a date like 2026-12-01"))),
            }
        };
        let from = day("From", &self.from)?.map(|d| zone.start_of(d));
        let to = day("To", &self.to)?
            .and_then(|d| d.succ_opt())
            .map(|d| zone.start_of(d));
        Ok((from, to))
    }

    /// The range in a URL (empty ends left out).
    pub fn range_query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("from", &self.from), ("to", &self.to)] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.finish()
    }
}

/// A path that is no wallet id names no wallet.
fn wallet_path(path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>) -> Result<Uuid> {
    path.map(|Path((_, id))| id)
        .map_err(|_| ConnectorError::NotFound("wallet"))
}

/// The wallet `wallet_id` of this workspace (another's is as absent as a missing one).
async fn wallet_of(state: &AppRef, ws_id: Uuid, wallet_id: Uuid) -> Result<workspaces::WalletRow> {
    workspaces::wallets(&state.db, ws_id)
        .await?
        .into_iter()
        .find(|w| w.id == wallet_id)
        .ok_or(ConnectorError::NotFound("wallet"))
}

/// What the statement and its CSV read from a request: the wallet of this workspace, the
/// workspace's zone and the range of days in it.
struct Range {
    ws: workspaces::Workspace,
    wallet: workspaces::WalletRow,
    tz: pages::Zone,
    query: StatementQuery,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

async fn range_of(
    state: &AppRef,
    admin: &Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    query: std::result::Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Range> {
    let wallet_id = wallet_path(path)?;
    let Query(query) = query?;
    let ws = workspaces::get_workspace(&state.db, admin.ws_id).await?;
    let wallet = wallet_of(state, admin.ws_id, wallet_id).await?;
    let tz = pages::Zone::named(&ws.time_zone);
    let (from, to) = query.range(tz)?;
    Ok(Range {
        ws,
        wallet,
        tz,
        query,
        from,
        to,
    })
}

/// `/ws/{ws}/wallets/{wallet}`: the statement, newest first.
pub(super) async fn statement(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    query: std::result::Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Response> {
    let Range {
        ws,
        wallet,
        tz,
        query: q,
        from,
        to,
    } = range_of(&state, &admin, path, query).await?;
    let before = match q.before.trim() {
        "" => None,
        id => Some(Uuid::parse_str(id).map_err(|_| ConnectorError::BadRequest("not a transaction id".into()))?),
    };
    let mut lines = ledger::statement(&state.db, admin.ws_id, wallet.id, from, to, before, STATEMENT_PAGE + 1).await?;
    let older = match lines.len() as i64 > STATEMENT_PAGE {
        true => {
            lines.truncate(STATEMENT_PAGE as usize);
            lines.last().map(|l| l.id)
        }
        false => None,
    };
    Ok(pages::render(&pages::Statement {
        ws_id: admin.ws_id,
        tz,
        ws_name: &ws.name,
        wallet: &wallet,
        lines: &lines,
        query: &q,
        older,
    }))
}

/// `/ws/{ws}/wallets/{wallet}/transactions.csv`: the range's transactions, oldest first.
pub(super) async fn csv(
    State(state): State<AppRef>,
    admin: Admin,
    path: std::result::Result<Path<(Uuid, Uuid)>, PathRejection>,
    query: std::result::Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Response> {
    let Range { wallet, from, to, .. } = range_of(&state, &admin, path, query).await?;
    let mut lines = ledger::statement(&state.db, admin.ws_id, wallet.id, from, to, None, CSV_MAX_LINES).await?;
    lines.reverse();
    let mut out = csv::Writer::from_writer(Vec::new());
    let written = (|| -> std::result::Result<Vec<u8>, csv::Error> {
        out.write_record([
            "id",
            "taken_at_utc",
            "amount",
            "currency",
            "description",
            "category",
            "tags",
            "source",
            "balance",
        ])?;
        for l in &lines {
            out.write_record([
                l.id.to_string(),
                l.taken_at.to_rfc3339(),
                l.amount.to_string(),
                wallet.currency.clone(),
                csv_text(&l.description),
                csv_text(l.category_name.as_deref().unwrap_or("")),
                csv_text(&l.tags.join(";")),
                l.source.clone(),
                l.balance.to_string(),
            ])?;
        }
        out.into_inner().map_err(|e| e.into_error().into())
    })()
    .map_err(|e| ConnectorError::Internal(anyhow::anyhow!("CSV not written: {e}")))?;
    let mut response = written.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"transactions.csv\""),
    );
    Ok(response)
}

/// Text a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a leading quote.
fn csv_text(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spreadsheet_formulas_are_defused() {
        for (text, want) in [
            ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
            ("@x", "'@x"),
            ("lunch", "lunch"),
            ("", ""),
        ] {
            assert_eq!(super::csv_text(text), want);
        }
    }
}
