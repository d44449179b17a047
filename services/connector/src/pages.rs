//! Server-rendered HTML. Every value from the database, the request or SePay goes through
//! [`esc`]; messages in redirects are codes looked up here, never text from the URL.

use axum::http::StatusCode;
use axum::response::Html;
use chrono::{DateTime, Utc};
use sepay_core::Provider;
use sepay_store::classification::RuleRow;
use sepay_store::connections::ConnectionView;
use sepay_store::endpoints::{CreatedEndpoint, CreatedStrigaEndpoint, Endpoint};
use sepay_store::events::EventRow;
use sepay_store::members::AdminWorkspace;
use sepay_store::workspaces::{WalletLinkView, WalletRow};
use std::fmt::Write;
use uuid::Uuid;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(text: Option<&str>) -> String {
    text.map(esc).unwrap_or_else(|| "—".into())
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;font-size:.9rem}\
.badge{padding:.1rem .5rem;border-radius:.3rem;background:#eee}.active{background:#c8f0c8}.error,.failed{background:#f6caca}\
.disconnecting,.revoked,.disconnected{background:#f3e2b8}.flash{padding:.6rem;border-radius:.3rem;margin:1rem 0}\
.ok{background:#e3f6e3}.bad{background:#fbe3e3}form.inline{display:inline}nav a{margin-right:1rem}code{background:#f4f4f4}";

pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
}

pub fn message(title: &str, message: &str) -> Html<String> {
    page(title, &format!("<p>{}</p><p><a href=\"/\">Home</a></p>", esc(message)))
}

/// What anonymous visitors (or expired sessions) get: how to sign in, and nothing else.
pub fn login_prompt() -> (StatusCode, Html<String>) {
    (
        StatusCode::UNAUTHORIZED,
        page(
            "Sign in",
            "<p id=\"login-required\">Sign in to manage the SePay integration: open the login link your platform \
             gives you (for local use, <code>sepayctl admin-token --ws &lt;workspace&gt; --user &lt;id&gt;</code> prints one).</p>",
        ),
    )
}

/// What a login link opens: a form that signs in by POST (this page's button, never the link
/// itself). When another user is signed in in this browser, it says so and asks first, so a link
/// from someone else cannot silently swap the session.
pub fn sign_in(token: &str, ws: Option<Uuid>, user: &str, signed_in_as: Option<&str>) -> Html<String> {
    let ws = ws.map(|w| w.to_string()).unwrap_or_default();
    let form = |label: &str| {
        format!(
            "<form method=\"post\" action=\"/login\" id=\"sign-in-form\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
             <input type=\"hidden\" name=\"ws\" value=\"{}\"><button id=\"sign-in\">{}</button></form>",
            esc(token),
            esc(&ws),
            esc(label)
        )
    };
    match signed_in_as {
        None => page(
            "Sign in",
            &format!(
                "<p>Sign in to the SePay integration as <b id=\"sign-in-user\">{}</b>.</p>{}",
                esc(user),
                form("Sign in")
            ),
        ),
        Some(current) => page(
            "Switch account?",
            &format!(
                "<p id=\"switch-account\">You are signed in as <b id=\"current-user\">{}</b>. This link signs you in as \
                 <b id=\"sign-in-user\">{}</b> instead. If you did not ask for that, cancel: someone else's link \
                 would make you work in their account.</p>{}<p><a id=\"cancel-sign-in\" href=\"/\">Cancel, stay signed in as {}</a></p>",
                esc(current),
                esc(user),
                form(&format!("Continue as {user}")),
                esc(current)
            ),
        ),
    }
}

fn hidden_csrf(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// A one-button POST form.
fn button(action: &str, csrf: &str, label: &str, id: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}<button id=\"{}\">{}</button></form>",
        esc(action),
        hidden_csrf(csrf),
        esc(id),
        esc(label)
    )
}

fn nav(ws: Uuid) -> String {
    format!(
        "<nav><a href=\"/ws/{ws}/integrations\">Integration</a><a href=\"/ws/{ws}/events\">Events</a>\
         <a href=\"/ws/{ws}/rules\">Rules</a><a href=\"/ws/{ws}/striga\">Striga</a><a href=\"/\">Workspaces</a></nav>"
    )
}

pub fn home(user: &str, workspaces: &[AdminWorkspace], sepay: Option<&str>, reason: Option<&str>) -> Html<String> {
    let mut body = flash(sepay, reason, None);
    let _ = write!(body, "<p>Signed in as <b>{}</b>.</p>", esc(user));
    if workspaces.is_empty() {
        body.push_str("<p>You are not an admin of any workspace.</p>");
    } else {
        body.push_str("<ul>");
        for w in workspaces {
            let _ = write!(
                body,
                "<li><a href=\"/ws/{}/integrations\">{}</a> ({})</li>",
                w.id,
                esc(&w.name),
                esc(&w.role)
            );
        }
        body.push_str("</ul>");
    }
    page("SePay integration", &body)
}

/// The text for a redirect's `reason` or `done` code; unknown codes get a generic text.
fn flash(sepay: Option<&str>, reason: Option<&str>, done: Option<&str>) -> String {
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
                "replayed" => "Failed events re-driven.",
                "rule_added" => "Rule added at the end of the order.",
                "rule_deleted" => "Rule deleted.",
                "rule_moved" => "Rule order saved.",
                "striga_linked" => "Striga account linked.",
                _ => return String::new(),
            },
        ),
        _ => return String::new(),
    };
    format!("<p class=\"flash {class}\" id=\"flash\">{}</p>", esc(text))
}

/// The connection's state as shown: a disconnect in progress is derived from the request time.
pub fn connection_state(c: Option<&ConnectionView>) -> &'static str {
    match c {
        None => "not connected",
        Some(c) if c.status == "active" && c.disconnect_requested_at.is_some() => "disconnecting",
        Some(c) if c.status == "active" => "active",
        Some(c) if c.status == "error" => "error",
        Some(_) => "disconnected",
    }
}

pub struct Integrations<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub connection: Option<&'a ConnectionView>,
    pub links: &'a [WalletLinkView],
    pub wallets: &'a [WalletRow],
    pub endpoints: &'a [Endpoint],
    pub runs: &'a [sepay_store::provisioning::ReconciliationRun],
    pub sepay: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub done: Option<&'a str>,
}

pub fn integrations(v: &Integrations<'_>) -> Html<String> {
    let ws = v.ws_id;
    let csrf = v.csrf;
    let mut b = nav(ws);
    b.push_str(&flash(v.sepay, v.reason, v.done));

    // connection
    let state = connection_state(v.connection);
    let _ = write!(
        b,
        "<h2>SePay connection</h2><p>Status: <span class=\"badge {cls}\" id=\"connection-status\">{state}</span></p>",
        cls = state.replace(' ', "-")
    );
    if let Some(c) = v.connection {
        let _ = write!(
            b,
            "<table><tr><th>Scopes</th><td>{}</td></tr><tr><th>Access token expires</th><td>{}</td></tr>\
             <tr><th>Last error</th><td id=\"last-error\">{}</td></tr><tr><th>Last account sync</th><td>{}</td></tr>\
             <tr><th>Last sync error</th><td id=\"last-sync-error\">{}</td></tr><tr><th>Last reconciliation</th><td>{}</td></tr></table>",
            esc(&c.scopes.join(" ")),
            time(c.access_token_expires_at),
            opt(c.last_error.as_deref()),
            time(c.last_synced_at),
            opt(c.last_sync_error.as_deref()),
            time(c.last_reconciled_at),
        );
    }
    let connect_label = if v.connection.is_some() {
        "Reconnect SePay"
    } else {
        "Connect SePay"
    };
    if state != "active" {
        b.push_str(&button(&format!("/ws/{ws}/connect"), csrf, connect_label, "connect"));
    }
    if matches!(state, "active" | "error") {
        b.push_str(&button(
            &format!("/ws/{ws}/disconnect"),
            csrf,
            "Disconnect",
            "disconnect",
        ));
    }
    if state == "active" {
        b.push_str(&button(&format!("/ws/{ws}/sync"), csrf, "Sync now", "sync"));
    }

    // bank accounts
    b.push_str("<h2>Bank accounts</h2>");
    if v.links.is_empty() {
        b.push_str("<p id=\"no-accounts\">No bank accounts yet (they appear after the account sync).</p>");
    } else {
        b.push_str("<table id=\"accounts\"><tr><th>Account</th><th>Sub account</th><th>Bank</th><th>Holder</th><th>Label</th><th>Active</th><th>Wallet</th></tr>");
        for l in v.links {
            let mut options = String::from("<option value=\"\">(none)</option>");
            for w in v.wallets {
                let selected = if Some(w.id) == l.wallet_id { " selected" } else { "" };
                let _ = write!(
                    options,
                    "<option value=\"{}\"{selected}>{} ({})</option>",
                    w.id,
                    esc(&w.name),
                    esc(&w.currency)
                );
            }
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>\
                 <form class=\"inline\" method=\"post\" action=\"/ws/{ws}/accounts/{}/wallet\">{}<select name=\"wallet_id\">{options}</select>\
                 <button>Save</button></form></td></tr>",
                esc(&l.account_number),
                opt(l.sub_account.as_deref()),
                opt(l.bank_short_name.as_deref()),
                opt(l.holder_name.as_deref()),
                opt(l.label.as_deref()),
                if l.active { "yes" } else { "no" },
                l.id,
                hidden_csrf(csrf),
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ws/{ws}/wallets\">{}<label>New wallet <input name=\"name\" required maxlength=\"200\"></label> \
         <label>Currency <input name=\"currency\" value=\"VND\" size=\"4\" maxlength=\"8\"></label> <button>Create wallet</button></form>",
        hidden_csrf(csrf)
    );

    // endpoints
    b.push_str("<h2>Webhook endpoints</h2>");
    let sepay_endpoints: Vec<&Endpoint> = v.endpoints.iter().filter(|e| e.provider == Provider::Sepay).collect();
    if !sepay_endpoints.is_empty() {
        b.push_str("<table id=\"endpoints\"><tr><th>Label</th><th>Status</th><th>Token prefix</th><th>SePay webhook</th><th>Bank account</th><th>Last used</th><th>Grace until</th><th></th></tr>");
        for e in sepay_endpoints {
            let actions = endpoint_actions(ws, csrf, e);
            let _ = write!(
                b,
                "<tr><td>{}</td><td><span class=\"badge {st}\">{st}</span></td><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                esc(&e.label),
                esc(&e.token_prefix),
                e.sepay_webhook_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "manual".into()),
                opt(e.bank_account_id.as_deref()),
                time(e.last_used_at),
                time(e.grace_until),
                st = esc(&e.status),
            );
        }
        b.push_str("</table>");
    }
    let mut wallet_options = String::from("<option value=\"\">(by bank account link)</option>");
    for w in v.wallets {
        let _ = write!(wallet_options, "<option value=\"{}\">{}</option>", w.id, esc(&w.name));
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ws/{ws}/endpoints\">{}<label>Label <input name=\"label\" value=\"manual\" maxlength=\"200\"></label> \
         <label>Wallet <select name=\"wallet_id\">{wallet_options}</select></label> <button id=\"create-endpoint\">Create manual endpoint</button></form>",
        hidden_csrf(csrf)
    );

    // reconciliation
    b.push_str("<h2>Reconciliation</h2>");
    if state == "active" {
        b.push_str(&button(
            &format!("/ws/{ws}/reconcile"),
            csrf,
            "Reconcile now",
            "reconcile",
        ));
    }
    if v.runs.is_empty() {
        b.push_str("<p>No reconciliation runs yet.</p>");
    } else {
        b.push_str("<table id=\"runs\"><tr><th>#</th><th>Trigger</th><th>Window</th><th>Status</th><th>Fetched</th><th>Inserted</th><th>Error</th><th>Started</th><th>Finished</th></tr>");
        for r in v.runs {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td><span class=\"badge {st}\">{st}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.id,
                esc(&r.trigger),
                time(Some(r.window_from)),
                time(Some(r.window_to)),
                r.fetched,
                r.inserted,
                opt(r.error.as_deref()),
                time(Some(r.started_at)),
                time(r.finished_at),
                st = esc(&r.status),
            );
        }
        b.push_str("</table>");
    }
    page(&format!("SePay integration — {}", v.ws_name), &b)
}

pub struct Events<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub rows: &'a [EventRow],
    pub status: Option<&'a str>,
    /// The `before` of the next (older) page, when there is one.
    pub next_before: Option<i64>,
    pub done: Option<&'a str>,
}

pub fn events(v: &Events<'_>) -> Html<String> {
    let ws = v.ws_id;
    let mut b = nav(ws);
    b.push_str(&flash(None, None, v.done));
    let status_q = v.status.map(|s| format!("&status={s}")).unwrap_or_default();
    b.push_str("<p>Filter: ");
    let _ = write!(b, "<a href=\"/ws/{ws}/events\">all</a>");
    for s in sepay_core::EventStatus::ALL.iter().map(|s| s.as_str()) {
        let _ = write!(b, " · <a href=\"/ws/{ws}/events?status={s}\">{s}</a>");
    }
    b.push_str("</p>");
    let failed = sepay_core::EventStatus::Failed.as_str();
    if v.status == Some(failed) && !v.rows.is_empty() {
        b.push_str(&button(
            &format!("/ws/{ws}/events/replay"),
            v.csrf,
            "Replay every failed event",
            "replay-all",
        ));
    }
    if v.rows.is_empty() {
        b.push_str("<p id=\"no-events\">No events.</p>");
    } else {
        b.push_str("<table id=\"events\"><tr><th>#</th><th>Received</th><th>Provider</th><th>Source</th><th>Id</th><th>Account</th><th>Type</th><th>Amount (as sent)</th><th>Status</th><th>Failure</th><th>Attempts</th><th>Deliveries</th><th></th></tr>");
        for e in v.rows {
            let replay = if e.status == failed {
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/ws/{ws}/events/replay\">{}<input type=\"hidden\" name=\"id\" value=\"{}\"><button id=\"replay-{}\">Replay</button></form>",
                    hidden_csrf(v.csrf),
                    e.id,
                    e.id
                )
            } else {
                String::new()
            };
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class=\"badge {st}\">{st}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{replay}</td></tr>",
                e.id,
                time(Some(e.received_at)),
                e.provider,
                esc(&e.source),
                opt(e.provider_id.as_deref()),
                opt(e.account_number.as_deref()),
                opt(e.transfer_type.as_deref()),
                opt(e.amount.as_deref()),
                opt(e.failure_reason.as_deref()),
                e.attempts,
                e.delivery_count,
                st = esc(&e.status),
            );
        }
        b.push_str("</table>");
    }
    if let Some(before) = v.next_before {
        let _ = write!(
            b,
            "<p><a id=\"older\" href=\"/ws/{ws}/events?before={before}{status_q}\">Older events →</a></p>"
        );
    }
    page(&format!("Events — {}", v.ws_name), &b)
}

pub struct Rules<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    pub rules: &'a [RuleRow],
    /// (balance, reserved, committed, released)
    pub credits: (i64, i64, i64, i64),
    pub done: Option<&'a str>,
}

/// A one-field POST form (the move buttons).
fn value_button(action: &str, csrf: &str, field: (&str, &str), label: &str, id: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"{}\" value=\"{}\"><button id=\"{}\">{}</button></form>",
        esc(action),
        hidden_csrf(csrf),
        esc(field.0),
        esc(field.1),
        esc(id),
        esc(label)
    )
}

pub fn rules(v: &Rules<'_>) -> Html<String> {
    let ws = v.ws_id;
    let csrf = v.csrf;
    let mut b = nav(ws);
    b.push_str(&flash(None, None, v.done));
    b.push_str(
        "<p>Rules run in order before the learned classifier and the model: the first matching rule with a category \
         decides; tags add up until a rule that does not continue.</p>",
    );
    if v.rules.is_empty() {
        b.push_str("<p id=\"no-rules\">No rules yet.</p>");
    } else {
        b.push_str("<table id=\"rules\"><tr><th>#</th><th>Name</th><th>When</th><th>Category</th><th>Tags</th><th>Then</th><th></th></tr>");
        for (i, r) in v.rules.iter().enumerate() {
            let base = format!("/ws/{ws}/rules/{}", r.id);
            let mut actions = String::new();
            if i > 0 {
                actions.push_str(&value_button(
                    &format!("{base}/move"),
                    csrf,
                    ("direction", "up"),
                    "↑",
                    &format!("up-{}", r.id),
                ));
            }
            if i + 1 < v.rules.len() {
                actions.push_str(&value_button(
                    &format!("{base}/move"),
                    csrf,
                    ("direction", "down"),
                    "↓",
                    &format!("down-{}", r.id),
                ));
            }
            actions.push_str(&button(
                &format!("{base}/delete"),
                csrf,
                "Delete",
                &format!("delete-{}", r.id),
            ));
            let conditions: Vec<String> = r
                .condition_texts()
                .iter()
                .map(|c| format!("<code>{}</code>", esc(c)))
                .collect();
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                i + 1,
                esc(&r.name),
                if r.match_all { "all" } else { "any" },
                conditions.join(", "),
                opt(r.category_name.as_deref()),
                esc(&r.tags.join(", ")),
                if r.stop_processing { "stop" } else { "continue" },
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(
        b,
        "<h2>Add a rule</h2><form method=\"post\" action=\"/ws/{ws}/rules\" id=\"add-rule\">{}\
         <p><label>Name <input name=\"name\" required maxlength=\"200\"></label></p>\
         <p><label>Conditions, one a line: <i>field operator value</i> with field content, amount, direction or account \
         and operator contains, is, one_of (a,b,c), regex, gte or lte<br>\
         <textarea name=\"conditions\" rows=\"3\" cols=\"60\" required placeholder=\"content contains grab\"></textarea></label></p>\
         <p><label><select name=\"matching\"><option value=\"all\">all conditions</option><option value=\"any\">any condition</option></select></label></p>\
         <p><label>Category <input name=\"category\" maxlength=\"200\"></label> \
         <select name=\"kind\"><option value=\"expense\">expense</option><option value=\"income\">income</option></select> (created if new)</p>\
         <p><label>Tags <input name=\"tags\" placeholder=\"ride, work\"></label> \
         <label><input type=\"checkbox\" name=\"keep_going\"> later rules may add their tags too</label></p>\
         <button id=\"add-rule-button\">Add rule</button></form>",
        hidden_csrf(csrf)
    );
    let (balance, reserved, committed, released) = v.credits;
    let _ = write!(
        b,
        "<h2>AI credits</h2><table id=\"credits\"><tr><th>Balance</th><td>{balance}</td></tr><tr><th>Reserved now</th><td>{reserved}</td></tr>\
         <tr><th>Spent</th><td>{committed}</td></tr><tr><th>Returned (failed or abandoned calls)</th><td>{released}</td></tr></table>"
    );
    page(&format!("Classification rules — {}", v.ws_name), &b)
}

/// Rotate (while active) and revoke (until revoked) buttons of an endpoint.
fn endpoint_actions(ws: Uuid, csrf: &str, e: &Endpoint) -> String {
    let mut actions = String::new();
    if e.status == "active" {
        actions.push_str(&button(
            &format!("/ws/{ws}/endpoints/{}/rotate", e.id),
            csrf,
            "Rotate",
            &format!("rotate-{}", e.id),
        ));
    }
    if e.status != "revoked" {
        actions.push_str(&button(
            &format!("/ws/{ws}/endpoints/{}/revoke", e.id),
            csrf,
            "Revoke",
            &format!("revoke-{}", e.id),
        ));
    }
    actions
}

pub struct Striga<'a> {
    pub ws_id: Uuid,
    pub ws_name: &'a str,
    pub csrf: &'a str,
    /// The workspace's endpoints; the Striga ones are shown.
    pub endpoints: &'a [Endpoint],
    pub wallets: &'a [WalletRow],
    pub links: &'a [sepay_store::striga::WalletLink],
    pub payouts: &'a [sepay_store::striga::Payout],
    pub mismatches: &'a [sepay_store::striga::BalanceMismatch],
    pub done: Option<&'a str>,
}

/// Striga (SEPA): endpoints, account → wallet links, payouts, balance mismatches.
pub fn striga(v: &Striga<'_>) -> Html<String> {
    let ws = v.ws_id;
    let csrf = v.csrf;
    let mut b = nav(ws);
    b.push_str(&flash(None, None, v.done));
    b.push_str(
        "<p>Striga posts SEPA transactions to an endpoint's URL (<code>/tx</code> appended) signed with your Striga          API key. Each event books into the wallet linked to its <code>accountId</code> (or, when it has none, its          <code>syncedOwnerId</code>), else into the endpoint's wallet; wallets must hold EUR.</p><h2>Endpoints</h2>",
    );
    let striga_endpoints: Vec<&Endpoint> = v.endpoints.iter().filter(|e| e.provider == Provider::Striga).collect();
    if striga_endpoints.is_empty() {
        b.push_str("<p id=\"no-striga-endpoints\">No Striga endpoint yet.</p>");
    } else {
        b.push_str("<table id=\"striga-endpoints\"><tr><th>Label</th><th>Status</th><th>Token prefix</th><th>Last used</th><th>Grace until</th><th></th></tr>");
        for e in striga_endpoints {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><span class=\"badge {st}\">{st}</span></td><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.label),
                esc(&e.token_prefix),
                time(e.last_used_at),
                time(e.grace_until),
                endpoint_actions(ws, csrf, e),
                st = esc(&e.status),
            );
        }
        b.push_str("</table>");
    }
    let mut eur_wallets = String::new();
    for w in v.wallets.iter().filter(|w| w.currency == sepay_core::striga::CURRENCY) {
        let _ = write!(eur_wallets, "<option value=\"{}\">{}</option>", w.id, esc(&w.name));
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ws/{ws}/striga/endpoints\" id=\"create-striga-endpoint\">{}\
         <label>Label <input name=\"label\" value=\"striga\" maxlength=\"200\"></label> \
         <label>Striga API key <input type=\"password\" name=\"api_key\" required autocomplete=\"off\"></label> \
         <label>Default wallet <select name=\"wallet_id\"><option value=\"\">(by account link only)</option>{eur_wallets}</select></label> \
         <button id=\"create-striga-endpoint-button\">Create Striga endpoint</button></form>",
        hidden_csrf(csrf)
    );

    b.push_str("<h2>Accounts</h2>");
    if !v.links.is_empty() {
        b.push_str(
            "<table id=\"striga-links\"><tr><th>Striga account or owner</th><th>Wallet</th><th>Currency</th></tr>",
        );
        for l in v.links {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&l.striga_ref),
                esc(&l.wallet_name),
                esc(&l.currency)
            );
        }
        b.push_str("</table>");
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/ws/{ws}/striga/links\" id=\"link-striga-account\">{}\
         <label>accountId or syncedOwnerId <input name=\"account\" required maxlength=\"128\"></label> \
         <label>Wallet <select name=\"wallet_id\">{eur_wallets}</select></label> <button id=\"link-striga-button\">Link</button></form>",
        hidden_csrf(csrf)
    );

    b.push_str("<h2>Payouts</h2>");
    if v.payouts.is_empty() {
        b.push_str("<p id=\"no-payouts\">No payouts yet.</p>");
    } else {
        b.push_str("<table id=\"payouts\"><tr><th>Payout</th><th>Status</th><th>Debit</th><th>Reversal</th><th>Updated</th></tr>");
        for p in v.payouts {
            let amount = |a: Option<String>| a.unwrap_or_else(|| "–".to_owned());
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.payout_id),
                esc(p.status),
                amount(p.debit.map(|d| d.to_string())),
                amount(p.reversal.map(|r| r.to_string())),
                time(Some(p.updated_at))
            );
        }
        b.push_str("</table>");
    }
    if !v.mismatches.is_empty() {
        b.push_str("<h2>Balance mismatches</h2><p>Booked as sent; Striga's balances did not add up.</p><table id=\"mismatches\"><tr><th>Event</th><th>Expected balance</th><th>Reported</th></tr>");
        for m in v.mismatches {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.event_id, m.expected, m.actual
            );
        }
        b.push_str("</table>");
    }
    page(&format!("Striga — {}", v.ws_name), &b)
}

/// The one time a Striga endpoint's URL is shown (Striga signs with its own key: nothing else).
pub fn created_striga_endpoint(ws: Uuid, created: &CreatedStrigaEndpoint, rotated: bool) -> Html<String> {
    let what = if rotated {
        "Striga endpoint rotated"
    } else {
        "Striga endpoint created"
    };
    let b = format!(
        "{nav}<p class=\"flash ok\">{what}. Copy the URL now: it is shown only once. Set it as the webhook URL in \
         Striga's dashboard; Striga appends <code>/tx</code> for transactions.</p>\
         <table><tr><th>Webhook URL</th><td><code id=\"webhook-url\">{}</code></td></tr></table>{}\
         <p><a href=\"/ws/{ws}/striga\">Back to Striga</a></p>",
        esc(&created.webhook_url),
        if rotated {
            "<p>The old URL keeps working until the grace period ends.</p>"
        } else {
            ""
        },
        nav = nav(ws),
    );
    page(what, &b)
}

/// The one time a manual endpoint's URL and key are shown.
pub fn created_endpoint(ws: Uuid, created: &CreatedEndpoint, rotated: bool) -> Html<String> {
    let what = if rotated {
        "Endpoint rotated"
    } else {
        "Endpoint created"
    };
    let b = format!(
        "{nav}<p class=\"flash ok\">{what}. Copy these now: they are shown only once. Paste them into SePay's webhook settings \
         (authentication: API key).</p><table><tr><th>Webhook URL</th><td><code id=\"webhook-url\">{}</code></td></tr>\
         <tr><th>API key</th><td><code id=\"api-key\">{}</code></td></tr><tr><th>SePay sends</th><td><code>Authorization: {}</code></td></tr></table>{}\
         <p><a href=\"/ws/{ws}/integrations\">Back to the integration</a></p>",
        esc(&created.webhook_url),
        esc(&created.api_key),
        esc(&created.authorization_header),
        if rotated {
            "<p>The old URL and key keep working until the grace period ends.</p>"
        } else {
            ""
        },
        nav = nav(ws),
    );
    page(what, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_sign_in_page_escapes_and_posts() {
        let ws = Uuid::new_v4();
        let Html(fresh) = sign_in("a.b\"><x", Some(ws), "<u>", None);
        assert!(fresh.contains("<form method=\"post\" action=\"/login\""), "{fresh}");
        assert!(fresh.contains("name=\"token\" value=\"a.b&quot;&gt;&lt;x\""), "{fresh}");
        assert!(fresh.contains(&format!("name=\"ws\" value=\"{ws}\"")));
        assert!(fresh.contains("&lt;u&gt;") && !fresh.contains("<u>"));
        assert!(!fresh.contains("switch-account"));
        let Html(switch) = sign_in("t", None, "<new>", Some("<old>"));
        assert!(
            switch.contains("id=\"switch-account\"") && switch.contains("Continue as &lt;new&gt;"),
            "{switch}"
        );
        assert!(switch.contains("Cancel, stay signed in as &lt;old&gt;") && !switch.contains("<old>"));
        assert!(switch.contains("name=\"ws\" value=\"\""));
    }

    #[test]
    fn flash_texts_come_from_codes_only() {
        let unknown = flash(Some("error"), Some("<script>alert(1)</script>"), None);
        assert!(!unknown.contains("script"));
        assert!(flash(Some("error"), Some("access_denied"), None).contains("denied"));
        assert!(flash(None, None, Some("<b>")).is_empty());
    }
}
