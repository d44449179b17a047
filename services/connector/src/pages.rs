//! Server-rendered HTML: askama templates in `templates/` (compiled and type-checked with the
//! crate). Every `{{ value }}` in them is HTML-escaped by askama, attributes included, so a value
//! from the database, the request or SePay cannot become markup; nothing here escapes by hand and
//! no template marks a value `|safe`. Messages in redirects are codes looked up here
//! ([`flash`]), never text from the URL.
//!
//! A page is a struct deriving [`Template`] whose fields the routes fill; [`render`] turns it into
//! a response. Every page extends `base.html`, which takes its `<title>` and `<h1>` from the
//! struct's `title()`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use sepay_core::{EventStatus, Provider};
use sepay_store::classification::RuleRow;
use sepay_store::connections::ConnectionView;
use sepay_store::endpoints::{CreatedEndpoint, CreatedStrigaEndpoint, Endpoint};
use sepay_store::events::EventRow;
use sepay_store::members::AdminWorkspace;
use sepay_store::provisioning::ReconciliationRun;
use sepay_store::workspaces::{WalletLinkView, WalletRow};
use uuid::Uuid;

/// The page as HTML; a template that fails to render (a value's `Display` failing) is logged and
/// answered with a plain 500.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "page not rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
        }
    }
}

/// The pages' only script: the event page's Copy button. Allowed by its hash in the
/// Content-Security-Policy ([`script_hash`]), so the pages otherwise stay script-free. Written
/// without the characters HTML escaping changes, so the rendered text is exactly this.
pub const COPY_SCRIPT: &str = "document.getElementById(`copy-payload`).onclick=function(){navigator.clipboard.writeText(document.getElementById(`payload`).textContent)}";

/// `'sha256-…'` of [`COPY_SCRIPT`], for the CSP's `script-src`.
pub fn script_hash() -> String {
    use base64::Engine;
    let digest = sepay_crypto::sha256(COPY_SCRIPT.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// An amount in its currency (templates: `self::money(amount, currency)`).
fn money(amount: &rust_decimal::Decimal, currency: &str) -> String {
    sepay_core::display::amount(*amount, currency)
}

/// `None` as a dash (templates: `self::opt(field)`).
fn opt(text: &Option<String>) -> &str {
    text.as_deref().unwrap_or("—")
}

/// A time in UTC (the tooltip of every time shown; the history's steps).
pub fn at(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The time zone a workspace's pages show times in (`workspaces.time_zone`, set on its settings
/// page; Asia/Ho_Chi_Minh by default, SePay's own). Templates: `{% call m::when(tz, field) %}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub chrono_tz::Tz);

impl Zone {
    /// The workspace's zone; a name that does not parse (never stored by the pages) is shown as
    /// Vietnam time.
    pub fn named(name: &str) -> Self {
        Self(name.parse().unwrap_or(chrono_tz::Asia::Ho_Chi_Minh))
    }

    /// `2026-12-01 16:30:00 +07`
    pub fn at(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.0).format("%Y-%m-%d %H:%M:%S %Z").to_string()
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant `day` begins in this zone (the pages' date filters are the workspace's days).
    pub fn start_of(&self, day: chrono::NaiveDate) -> DateTime<Utc> {
        use chrono::TimeZone;
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        // a day that starts in a daylight-saving gap starts at the gap's end
        self.0
            .from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                self.0
                    .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
    }
}

/// A short message and a link home (errors, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub heading: &'a str,
    pub message: &'a str,
}

impl Message<'_> {
    fn title(&self) -> &str {
        self.heading
    }
}

pub fn message(heading: &str, message: &str) -> Response {
    render(&Message { heading, message })
}

#[derive(Template)]
#[template(path = "login_prompt.html")]
struct LoginPrompt;

impl LoginPrompt {
    fn title(&self) -> &'static str {
        "Sign in"
    }
}

/// What anonymous visitors (or expired sessions) get: how to sign in, and nothing else.
pub fn login_prompt() -> Response {
    (StatusCode::UNAUTHORIZED, render(&LoginPrompt)).into_response()
}

/// What a login link opens: a form that signs in by POST (this page's button, never the link
/// itself). When another user is signed in in this browser, it says so and asks first, so a link
/// from someone else cannot silently swap the session.
#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignIn<'a> {
    pub token: &'a str,
    pub ws: Option<Uuid>,
    /// Who the link signs in.
    pub user: &'a str,
    /// Who this browser is signed in as now, when that is someone else.
    pub signed_in_as: Option<&'a str>,
}

impl SignIn<'_> {
    fn title(&self) -> &'static str {
        match self.signed_in_as {
            None => "Sign in",
            Some(_) => "Switch account?",
        }
    }

    fn button_label(&self) -> String {
        match self.signed_in_as {
            None => "Sign in".to_owned(),
            Some(_) => format!("Continue as {}", self.user),
        }
    }
}

/// A line at the top of a page after a redirect: the text for its `reason` or `done` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `ok` or `bad`.
    pub class: &'static str,
    pub text: String,
}

/// What a replay of every failed event did (`n`: how many were re-driven).
pub fn replayed(n: Option<u64>) -> Option<Flash> {
    let n = n?;
    Some(match n {
        0 => Flash {
            class: "bad",
            text: "Nothing was re-driven: no failed event here can be fixed by trying again.".into(),
        },
        1 => Flash {
            class: "ok",
            text: "1 failed event re-driven: it is on its way to the processor again.".into(),
        },
        n => Flash {
            class: "ok",
            text: format!("{n} failed events re-driven: they are on their way to the processor again."),
        },
    })
}

/// The text for a redirect's `reason` or `done` code; unknown codes get a generic text (an error)
/// or nothing (a `done`).
pub fn flash(sepay: Option<&str>, reason: Option<&str>, done: Option<&str>) -> Option<Flash> {
    let (class, text) = match (sepay, done) {
        (Some("connected"), _) => ("ok", "SePay is connected. Bank accounts are synced in the background."),
        (Some("error"), _) => (
            "bad",
            match reason.unwrap_or_default() {
                "missing_params" => "SePay's answer lacked the authorization code or state; please connect again.",
                "invalid_state" => {
                    "The connection attempt could not be verified (it was started in another browser or the cookie is gone); please connect again."
                }
                "expired_state" => "The connection attempt took longer than 10 minutes; please connect again.",
                "state_reused" => "This connection attempt was already completed; please connect again.",
                "access_denied" => "Access was denied on SePay's consent page.",
                "provider_error" => "SePay reported an error; please try again.",
                "exchange_failed" => "SePay did not accept the authorization code; please connect again.",
                "save_failed" => "The connection could not be saved; please try again.",
                _ => "Connecting SePay failed; please try again.",
            },
        ),
        (_, Some("replay_refused")) => (
            "bad",
            "Not re-driven: the event is not failed, or its failure cannot be fixed by trying again.",
        ),
        (_, Some(done)) => (
            "ok",
            match done {
                "disconnect_requested" => {
                    "Disconnect requested: webhooks are removed and tokens revoked in the background."
                }
                "sync_requested" => "Sync requested.",
                "reconcile_requested" => "Reconciliation requested.",
                "rotation_requested" => {
                    "Rotation requested: the provisioner updates SePay, then the old URL keeps working for the grace period."
                }
                "revoked" => "Endpoint revoked.",
                "mapping_saved" => "Wallet mapping saved.",
                "wallet_created" => "Wallet created.",
                "replayed_one" => "Event re-driven: it is received again and on its way to the processor.",
                "rule_added" => "Rule added at the end of the order.",
                "rule_deleted" => "Rule deleted.",
                "rule_moved" => "Rule order saved.",
                "striga_linked" => "Striga account linked.",
                "settings_saved" => "Settings saved.",
                _ => return None,
            },
        ),
        _ => return None,
    };
    Some(Flash {
        class,
        text: text.to_owned(),
    })
}

/// `/`: the workspaces the signed-in user administers.
#[derive(Template)]
#[template(path = "home.html")]
pub struct Home<'a> {
    pub user: &'a str,
    pub workspaces: &'a [AdminWorkspace],
    pub flash: Option<Flash>,
}

impl Home<'_> {
    fn title(&self) -> &'static str {
        "SePay integration"
    }
}

/// The connection's state as shown: a disconnect in progress is derived from the request time.
pub fn connection_state(c: Option<&ConnectionView>) -> &'static str {
    match c {
        None => "not connected",
        Some(c) if c.status == "active" && c.disconnect_requested_at.is_some() => "disconnecting",
        Some(c) if c.status == "active" => "active",
        // still working: the token refresh is being retried
        Some(c) if c.status == "degraded" => "degraded",
        Some(c) if c.status == "needs_reconnect" => "needs reconnect",
        Some(_) => "disconnected",
    }
}

/// `/ws/{ws}/integrations`: the SePay connection, bank accounts, endpoints, reconciliation.
#[derive(Template)]
#[template(path = "integrations.html")]
pub struct Integrations<'a> {
    pub ws_id: Uuid,
    /// The workspace's time zone.
    pub tz: Zone,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub connection: Option<&'a ConnectionView>,
    pub links: &'a [WalletLinkView],
    pub wallets: &'a [WalletRow],
    pub endpoints: &'a [Endpoint],
    pub runs: &'a [ReconciliationRun],
    /// Running-balance gaps not closed yet: a transaction missing between two booked ones.
    pub gaps: &'a [sepay_store::balances::Gap],
    /// Webhooks the provisioner found deleted, disabled or changed at SePay, and set right.
    pub repairs: &'a [sepay_store::provisioning::WebhookRepair],
    pub flash: Option<Flash>,
}

impl Integrations<'_> {
    fn title(&self) -> String {
        format!("SePay integration — {}", self.ws_name)
    }

    fn state(&self) -> &'static str {
        connection_state(self.connection)
    }

    /// Why the status is what it is, next to it: a degraded connection's last error, what a
    /// reconnect is needed for, or an active one's failed account sync (never "active" alone
    /// beside an error).
    fn status_detail(&self) -> Option<String> {
        let c = self.connection?;
        match self.state() {
            "degraded" => Some(format!(
                "the token refresh failed ({}); retried by itself, nothing is lost meanwhile",
                c.last_error.as_deref().unwrap_or("no answer")
            )),
            "needs reconnect" => Some(format!(
                "{}: reconnect SePay to resume",
                c.last_error.as_deref().unwrap_or("SePay refused the grant")
            )),
            "active" => c
                .last_sync_error
                .as_deref()
                .map(|e| format!("but the last account sync failed: {e}")),
            _ => None,
        }
    }

    fn connect_label(&self) -> &'static str {
        match self.connection {
            Some(_) => "Reconnect SePay",
            None => "Connect SePay",
        }
    }

    /// SePay's endpoints (Striga's are on the Striga page).
    fn sepay_endpoints(&self) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.provider == Provider::Sepay)
            .collect()
    }
}

/// `/ws/{ws}/events`: a page of the events the filters match, newest first.
#[derive(Template)]
#[template(path = "events.html")]
pub struct Events<'a> {
    pub ws_id: Uuid,
    /// The workspace's time zone.
    pub tz: Zone,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub rows: &'a [EventRow],
    /// As typed, shown again in the form.
    pub filters: &'a crate::routes::EventFilters,
    /// Filters that could not be read (the form is shown again with them).
    pub errors: &'a [String],
    /// Events matching, counted up to [`crate::routes::COUNT_CAP`] + 1.
    pub count: i64,
    /// The `before` of the older page, and the `after` of the newer one, when there are.
    pub older: Option<i64>,
    pub newer: Option<i64>,
    pub flash: Option<Flash>,
}

impl Events<'_> {
    fn title(&self) -> String {
        format!("Events — {}", self.ws_name)
    }

    /// "Replay the failed events shown by this filter": when some shown could be re-driven.
    fn replay_all(&self) -> bool {
        self.rows.iter().any(replayable)
    }

    /// "1,234 events", or "more than 10,000 events".
    fn count_text(&self) -> String {
        let cap = crate::routes::COUNT_CAP;
        match self.count {
            n if n > cap => format!("more than {} events", sepay_core::display::count(cap)),
            1 => "1 event".into(),
            n => format!("{} events", sepay_core::display::count(n)),
        }
    }

    /// The filters in a URL (`&`-joined; empty when none).
    fn filter_query(&self) -> String {
        self.filters.query_string()
    }

    /// The link to the page older (`before`) or newer (`after`) than event `id`, filters kept.
    fn page_href(&self, key: &str, id: &i64) -> String {
        let filters = self.filter_query();
        let join = if filters.is_empty() { "" } else { "&" };
        format!("/ws/{}/events?{filters}{join}{key}={id}", self.ws_id)
    }

    fn is_status(&self, status: &str) -> bool {
        self.filters.status == status
    }

    fn is_provider(&self, provider: &str) -> bool {
        self.filters.provider == provider
    }
}

/// `GET /ws/{ws}/events/replay`: the confirm step of a bulk replay.
#[derive(Template)]
#[template(path = "replay_confirm.html")]
pub struct ReplayConfirm<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub filters: &'a crate::routes::EventFilters,
    /// Failed events the replay would re-drive.
    pub count: usize,
    /// The count reached [`crate::routes::REPLAY_BATCH`]: more remain for another replay.
    pub capped: bool,
}

impl ReplayConfirm<'_> {
    fn title(&self) -> String {
        format!("Replay failed events — {}", self.ws_name)
    }

    fn filter_query(&self) -> String {
        self.filters.query_string()
    }
}

/// The statuses to filter by.
fn statuses() -> impl Iterator<Item = &'static str> {
    EventStatus::ALL.iter().map(|s| s.as_str())
}

/// Whether a replay can change something (`lifecycle::replay_can_fix`); a reason this version
/// does not know is left to the replay to decide.
fn can_replay(status: &str, failure_reason: Option<&str>) -> bool {
    EventStatus::parse(status).is_some_and(|status| {
        sepay_core::lifecycle::replay_can_fix(status, failure_reason.and_then(sepay_core::FailureReason::parse))
    })
}

/// Whether an event gets a Replay button.
fn replayable(e: &EventRow) -> bool {
    can_replay(&e.status, e.failure_reason.as_deref())
}

/// An event's amount as sent, shown in its currency: SePay's VND as is, Striga's cents as EUR.
fn event_amount(provider: Provider, sent: Option<&str>) -> String {
    let Some(value) = sent.and_then(|s| s.trim().parse::<rust_decimal::Decimal>().ok()) else {
        return sent.unwrap_or("—").to_owned();
    };
    match provider {
        Provider::Sepay => sepay_core::display::amount(value, sepay_core::SEPAY_CURRENCY),
        Provider::Striga => {
            sepay_core::display::amount(value / rust_decimal::Decimal::ONE_HUNDRED, sepay_core::striga::CURRENCY)
        }
    }
}

/// `/ws/{ws}/events/{id}`: one event, its payload, deliveries and booking.
#[derive(Template)]
#[template(path = "event.html")]
pub struct EventPage<'a> {
    pub ws_id: Uuid,
    /// The workspace's time zone.
    pub tz: Zone,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub event: &'a sepay_store::events::Event,
    /// The amount as sent, read as the events list reads it.
    pub sent_amount: Option<&'a str>,
    pub attempts: &'a [sepay_store::deliveries::DeliveryAttempt],
    pub booked: Option<&'a sepay_store::ledger::BookedTransaction>,
    pub flash: Option<Flash>,
}

impl EventPage<'_> {
    fn title(&self) -> String {
        format!("Event {} — {}", self.event.id, self.ws_name)
    }

    /// The payload's top-level values, as sent (objects and arrays are in the raw payload).
    fn fields(&self) -> Vec<(String, String)> {
        let Some(serde_json::Value::Object(map)) = &self.event.payload else {
            return Vec::new();
        };
        map.iter()
            .filter_map(|(key, value)| match value {
                serde_json::Value::String(s) => Some((key.clone(), s.clone())),
                serde_json::Value::Number(n) => Some((key.clone(), n.to_string())),
                serde_json::Value::Bool(b) => Some((key.clone(), b.to_string())),
                serde_json::Value::Null => Some((key.clone(), "null".into())),
                _ => None,
            })
            .collect()
    }

    /// The payload as pretty JSON; a body that was not a JSON object, verbatim.
    fn payload_text(&self) -> String {
        match (&self.event.payload, &self.event.raw_body) {
            (Some(payload), _) => serde_json::to_string_pretty(payload).unwrap_or_default(),
            (None, Some(raw)) => raw.clone(),
            (None, None) => String::new(),
        }
    }

    /// The amount as sent, in its currency.
    fn amount(&self) -> String {
        event_amount(self.event.provider, self.sent_amount)
    }

    fn replayable(&self) -> bool {
        can_replay(&self.event.status, self.event.failure_reason.as_deref())
    }

    /// Why no Replay button, when the event failed.
    fn not_replayable_because(&self) -> Option<&'static str> {
        (self.event.status == EventStatus::Failed.as_str() && !self.replayable()).then_some(
            "its payload cannot be booked however often it is tried; SePay or Striga must send a corrected one",
        )
    }

    /// What happened to the event, in order, from its timestamps (each delivery is in the log
    /// below): received, each reopening, published, booked.
    fn timeline(&self) -> Vec<(Option<DateTime<Utc>>, String)> {
        let e = self.event;
        let mut steps = vec![(Some(e.received_at), "first delivery stored (attempt 1)".to_owned())];
        if e.attempts > 1 {
            steps.push((Some(e.opened_at), format!("reopened for attempt {}", e.attempts)));
        }
        if let Some(published) = e.published_at {
            steps.push((
                Some(published),
                format!("attempt {} handed to the processor", e.attempts),
            ));
        }
        let now = match e.status.as_str() {
            s if s == EventStatus::Processed.as_str() => "booked".to_owned(),
            s if s == EventStatus::Duplicate.as_str() => {
                "a duplicate of a transaction booked by another event: nothing booked".to_owned()
            }
            s if s == EventStatus::Failed.as_str() => format!(
                "failed: {}",
                e.failure_reason.as_deref().unwrap_or("no reason recorded")
            ),
            _ => "waiting for the processor".to_owned(),
        };
        steps.push((e.processed_at, now));
        steps
    }
}

/// The page a destructive button leads to: what it will do, and the button that does it
/// (`confirm=yes`), or Cancel.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirm<'a> {
    pub ws_id: Uuid,
    pub csrf: &'a str,
    /// Where the confirmed form is POSTed (the button's own action).
    pub action: String,
    pub question: &'a str,
    /// What happens, in the admin's terms.
    pub consequence: &'a str,
    pub button: &'a str,
    /// Where Cancel goes.
    pub back: String,
}

impl Confirm<'_> {
    fn title(&self) -> &str {
        self.question
    }
}

/// `/ws/{ws}/settings`: the workspace's time zone (a form shown again with the value and the
/// error when it is refused).
#[derive(Template)]
#[template(path = "settings.html")]
pub struct Settings<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    /// As stored, or as typed when refused.
    pub time_zone: &'a str,
    pub error: Option<String>,
    pub flash: Option<Flash>,
}

impl Settings<'_> {
    fn title(&self) -> String {
        format!("Settings — {}", self.ws_name)
    }

    /// Zones offered in the list (any IANA name may be typed).
    fn suggested(&self) -> [&'static str; 8] {
        [
            "Asia/Ho_Chi_Minh",
            "Asia/Bangkok",
            "Asia/Singapore",
            "Asia/Tokyo",
            "Europe/Berlin",
            "Europe/London",
            "America/New_York",
            "UTC",
        ]
    }
}

/// `/ws/{ws}/overview`: the last days at a glance, and what needs an admin.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct Overview<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub tz: Zone,
    /// Oldest first, one a day, zeros included.
    pub days: &'a [crate::routes::DayCounts],
    /// Deliveries, bookings and failures a day.
    pub activity: crate::chart::Chart,
    /// Money in and out a day, one chart per currency.
    pub money_charts: &'a [(String, crate::chart::Chart)],
    /// Days with bookings, per currency.
    pub money: &'a [sepay_store::overview::BookingDay],
    pub open_gaps: i64,
    pub flagged_gaps: i64,
    pub live_webhooks: i64,
    /// When a provisioned webhook was last seen healthy at SePay.
    pub last_verified: Option<DateTime<Utc>>,
    /// Webhooks set right at SePay in the period (deleted, disabled or changed there).
    pub repairs: i64,
    pub connection: &'static str,
}

impl Overview<'_> {
    fn title(&self) -> String {
        format!("Overview — {}", self.ws_name)
    }

    fn width(&self) -> u32 {
        crate::chart::WIDTH
    }

    fn plot_height(&self) -> u32 {
        crate::chart::PLOT_HEIGHT
    }

    fn bar_width(&self) -> u32 {
        crate::chart::BAR_WIDTH
    }

    fn totals(&self) -> (i64, i64, i64) {
        self.days.iter().fold((0, 0, 0), |(d, b, f), day| {
            (d + day.deliveries, b + day.booked, f + day.failed)
        })
    }
}

/// `/ws/{ws}/wallets`: the workspace's wallets, each with its count and balance.
#[derive(Template)]
#[template(path = "wallets.html")]
pub struct Wallets<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub wallets: &'a [sepay_store::ledger::WalletBalance],
}

impl Wallets<'_> {
    fn title(&self) -> String {
        format!("Wallets — {}", self.ws_name)
    }
}

/// `/ws/{ws}/wallets/{wallet}`: a wallet's transactions with the running balance.
#[derive(Template)]
#[template(path = "statement.html")]
pub struct Statement<'a> {
    pub ws_id: Uuid,
    /// The workspace's time zone.
    pub tz: Zone,
    pub ws_name: &'a str,
    pub wallet: &'a WalletRow,
    pub lines: &'a [sepay_store::ledger::StatementLine],
    pub query: &'a crate::routes::StatementQuery,
    /// The `before` of the older page, when there is one.
    pub older: Option<Uuid>,
}

impl Statement<'_> {
    fn title(&self) -> String {
        format!("{} ({}) — {}", self.wallet.name, self.wallet.currency, self.ws_name)
    }

    fn base(&self) -> String {
        format!("/ws/{}/wallets/{}", self.ws_id, self.wallet.id)
    }

    /// The range in a URL, with `&` or `?` as the next parameter needs.
    fn range_query(&self) -> String {
        self.query.range_query()
    }

    fn older_href(&self, before: &Uuid) -> String {
        let range = self.range_query();
        let join = if range.is_empty() { "" } else { "&" };
        format!("{}?{range}{join}before={before}", self.base())
    }
}

/// `/ws/{ws}/rules`: classification rules in order, the form to add one, AI credits.
#[derive(Template)]
#[template(path = "rules.html")]
pub struct Rules<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub rules: &'a [RuleRow],
    /// (balance, reserved, committed, released)
    pub credits: (i64, i64, i64, i64),
    /// The add-rule form as typed, and every mistake in it (empty: a fresh form).
    pub form: &'a crate::routes::NewRuleForm,
    pub errors: &'a [String],
    pub flash: Option<Flash>,
}

impl Rules<'_> {
    fn title(&self) -> String {
        format!("Classification rules — {}", self.ws_name)
    }
}

/// `/ws/{ws}/striga` (SEPA): endpoints, account → wallet links, payouts, balance mismatches.
#[derive(Template)]
#[template(path = "striga.html")]
pub struct Striga<'a> {
    pub ws_id: Uuid,
    /// The workspace's time zone.
    pub tz: Zone,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    /// The workspace's endpoints; the Striga ones are shown.
    pub endpoints: &'a [Endpoint],
    pub wallets: &'a [WalletRow],
    pub links: &'a [sepay_store::striga::WalletLink],
    pub payouts: &'a [sepay_store::striga::Payout],
    pub mismatches: &'a [sepay_store::striga::BalanceMismatch],
    pub fees: &'a [sepay_store::striga::StrigaFee],
    pub flash: Option<Flash>,
}

impl Striga<'_> {
    fn title(&self) -> String {
        format!("Striga — {}", self.ws_name)
    }

    fn striga_endpoints(&self) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.provider == Provider::Striga)
            .collect()
    }

    /// The wallets Striga's events may book into.
    fn eur_wallets(&self) -> Vec<&WalletRow> {
        self.wallets
            .iter()
            .filter(|w| w.currency == sepay_core::striga::CURRENCY)
            .collect()
    }
}

/// The one time a manual endpoint's URL and key are shown.
#[derive(Template)]
#[template(path = "created_endpoint.html")]
pub struct CreatedEndpointPage<'a> {
    pub ws_id: Uuid,
    pub created: &'a CreatedEndpoint,
    pub rotated: bool,
}

impl CreatedEndpointPage<'_> {
    fn title(&self) -> &'static str {
        match self.rotated {
            true => "Endpoint rotated",
            false => "Endpoint created",
        }
    }
}

/// The one time a Striga endpoint's URL is shown (Striga signs with its own key: nothing else).
#[derive(Template)]
#[template(path = "created_striga_endpoint.html")]
pub struct CreatedStrigaEndpointPage<'a> {
    pub ws_id: Uuid,
    pub created: &'a CreatedStrigaEndpoint,
    pub rotated: bool,
}

impl CreatedStrigaEndpointPage<'_> {
    fn title(&self) -> &'static str {
        match self.rotated {
            true => "Striga endpoint rotated",
            false => "Striga endpoint created",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert('x')</script>\"&";
    const ESCAPED: &str = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#34;&#38;";

    fn html(page: &impl Template) -> String {
        page.render().unwrap()
    }

    #[test]
    fn the_sign_in_page_escapes_and_posts() {
        let ws = Uuid::new_v4();
        let fresh = html(&SignIn {
            token: "a.b\"><x",
            ws: Some(ws),
            user: "<u>",
            signed_in_as: None,
        });
        assert!(fresh.contains("<form method=\"post\" action=\"/login\""), "{fresh}");
        assert!(
            fresh.contains("name=\"token\" value=\"a.b&#34;&#62;&#60;x\""),
            "{fresh}"
        );
        assert!(fresh.contains(&format!("name=\"ws\" value=\"{ws}\"")));
        assert!(fresh.contains("&#60;u&#62;") && !fresh.contains("<u>"));
        assert!(!fresh.contains("switch-account"));
        let switch = html(&SignIn {
            token: "t",
            ws: None,
            user: "<new>",
            signed_in_as: Some("<old>"),
        });
        assert!(
            switch.contains("id=\"switch-account\"") && switch.contains("Continue as &#60;new&#62;"),
            "{switch}"
        );
        assert!(switch.contains("Cancel, stay signed in as &#60;old&#62;") && !switch.contains("<old>"));
        assert!(switch.contains("name=\"ws\" value=\"\""));
    }

    #[test]
    fn flash_texts_come_from_codes_only() {
        let unknown = flash(Some("error"), Some("<script>alert(1)</script>"), None).unwrap();
        assert!(!unknown.text.contains("script"));
        assert!(
            flash(Some("error"), Some("access_denied"), None)
                .unwrap()
                .text
                .contains("denied")
        );
        assert_eq!(flash(None, None, Some("<b>")), None);
        assert_eq!(flash(None, None, None), None);
    }

    /// Escaping is askama's, for every value: no template turns it off.
    #[test]
    fn no_template_turns_escaping_off() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            for off in ["|safe", "filtersafe", "|escape(", "|e(", "autoescape"] {
                assert!(!text.contains(off), "{} uses {off}", path.display());
            }
            seen += 1;
        }
        assert!(seen >= 10, "templates read: {seen}");
    }

    #[test]
    fn hostile_text_is_rendered_escaped() {
        let ws_id = Uuid::new_v4();
        let workspaces = [AdminWorkspace {
            id: ws_id,
            name: HOSTILE.into(),
            role: HOSTILE.into(),
        }];
        let home = html(&Home {
            user: HOSTILE,
            workspaces: &workspaces,
            flash: None,
        });
        let message = html(&Message {
            heading: HOSTILE,
            message: HOSTILE,
        });
        let rule = RuleRow {
            id: Uuid::new_v4(),
            position: 1,
            name: HOSTILE.into(),
            match_all: true,
            conditions: serde_json::json!([{"field": "content", "op": "contains", "value": HOSTILE}]),
            category_id: None,
            category_name: Some(HOSTILE.into()),
            tags: vec![HOSTILE.into()],
            stop_processing: true,
        };
        let rules = html(&Rules {
            ws_id,
            ws_name: HOSTILE,
            csrf: HOSTILE,
            rules: std::slice::from_ref(&rule),
            credits: (1, 2, 3, 4),
            form: &crate::routes::NewRuleForm::default(),
            errors: &[HOSTILE.into()],
            flash: None,
        });
        let filters = crate::routes::EventFilters {
            account: HOSTILE.into(),
            q: HOSTILE.into(),
            ..Default::default()
        };
        let events = html(&Events {
            ws_id,
            tz: Zone::named("Asia/Ho_Chi_Minh"),
            ws_name: HOSTILE,
            csrf: HOSTILE,
            rows: &[],
            filters: &filters,
            errors: &[HOSTILE.into()],
            count: 3,
            older: Some(7),
            newer: None,
            flash: None,
        });
        for page in [home, message, rules, events] {
            assert!(!page.contains("<script"), "{page}");
            assert!(page.contains(ESCAPED), "{page}");
        }
    }
}
