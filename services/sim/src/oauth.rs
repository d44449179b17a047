//! SePay's OAuth2 server: authorize (consent page), token (authorization_code, refresh_token),
//! revoke; and the Bearer check every `/api/v1` call goes through.

use crate::error::SimError;
use crate::model::{AuthCode, Faults, Grant, Id, TOKEN_TIMEOUT_HANG, TokenFailureKind};
use crate::{RetryAfterStyle, Sim};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Every scope SePay documents.
pub const SCOPES: [&str; 7] = [
    "bank-account:read",
    "transaction:read",
    "webhook:read",
    "webhook:write",
    "webhook:delete",
    "profile",
    "company",
];

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/authorize/decision", post(decision))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
}

#[derive(Debug, Deserialize, Clone)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Problems with the client or redirect URI are shown, never redirected (RFC 6749 §4.1.2.1).
fn check_client(sim: &Sim, q: &AuthorizeQuery) -> Result<(Id, Vec<String>), String> {
    let client_id = q.client_id.as_deref().ok_or("client_id is required")?;
    let redirect_uri = q.redirect_uri.as_deref().ok_or("redirect_uri is required")?;
    let world = sim.world();
    let client = world.clients.get(client_id).ok_or("unknown client_id")?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err("redirect_uri is not registered for this client".into());
    }
    if q.response_type.as_deref() != Some("code") {
        return Err("response_type must be code".into());
    }
    let scopes: Vec<String> = q
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err("scope is required".into());
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(format!("unknown scope {bad}"));
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return Err("code_challenge_method must be S256".into());
    }
    Ok((client.company_id, scopes))
}

async fn authorize(State(sim): State<Arc<Sim>>, Query(q): Query<AuthorizeQuery>) -> Response {
    let (company_id, scopes) = match check_client(&sim, &q) {
        Ok(ok) => ok,
        Err(problem) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page("Invalid request", &escape(&problem))),
            )
                .into_response();
        }
    };
    if sim.config.sim_auto_approve {
        return approve(&sim, &q, company_id, scopes).into_response();
    }
    let hidden: String = [
        ("response_type", q.response_type.as_deref()),
        ("client_id", q.client_id.as_deref()),
        ("redirect_uri", q.redirect_uri.as_deref()),
        ("scope", q.scope.as_deref()),
        ("state", q.state.as_deref()),
        ("code_challenge", q.code_challenge.as_deref()),
        ("code_challenge_method", q.code_challenge_method.as_deref()),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v))))
    .collect();
    let company = sim
        .world()
        .companies
        .get(&company_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let list: String = scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        r#"<p>The application <b>{client}</b> asks to access <b>{company}</b> with:</p><ul>{list}</ul>
<form method="post" action="/oauth/authorize/decision">{hidden}
<button name="decision" value="approve" id="approve">Approve</button>
<button name="decision" value="deny" id="deny">Deny</button></form>"#,
        client = escape(q.client_id.as_deref().unwrap_or_default()),
        company = escape(&company),
    );
    Html(page("SePay (simulator): authorize application", &body)).into_response()
}

#[derive(Debug, Deserialize)]
struct Decision {
    decision: String,
    #[serde(flatten)]
    query: HashMap<String, String>,
}

async fn decision(State(sim): State<Arc<Sim>>, Form(form): Form<Decision>) -> Response {
    let get = |k: &str| form.query.get(k).cloned();
    let q = AuthorizeQuery {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
    };
    let (company_id, scopes) = match check_client(&sim, &q) {
        Ok(ok) => ok,
        Err(problem) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page("Invalid request", &escape(&problem))),
            )
                .into_response();
        }
    };
    if form.decision != "approve" {
        let mut params = vec![("error", "access_denied".to_owned())];
        if let Some(state) = q.state.clone() {
            params.push(("state", state));
        }
        return Redirect::to(&with_query(q.redirect_uri.as_deref().unwrap_or_default(), &params)).into_response();
    }
    approve(&sim, &q, company_id, scopes).into_response()
}

fn approve(sim: &Sim, q: &AuthorizeQuery, company_id: Id, scopes: Vec<String>) -> Redirect {
    let code = random_token("spc_");
    let redirect_uri = q.redirect_uri.clone().unwrap_or_default();
    sim.world().codes.insert(
        code.clone(),
        AuthCode {
            client_id: q.client_id.clone().unwrap_or_default(),
            company_id,
            redirect_uri: redirect_uri.clone(),
            scopes,
            expires_at: Utc::now() + chrono::Duration::seconds(sim.config.sim_code_ttl_secs as i64),
            used: false,
            code_challenge: q.code_challenge.clone(),
        },
    );
    let mut params = vec![("code", code)];
    if let Some(state) = q.state.clone() {
        params.push(("state", state));
    }
    Redirect::to(&with_query(&redirect_uri, &params))
}

fn with_query(base: &str, params: &[(&str, String)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// Client credentials from the form or HTTP Basic.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Response, SimError> {
    // an armed outage fails the call before anything in it is looked at: no code is spent and
    // no refresh token rotated, so a caller that saw it fail may retry with what it holds
    let outage = sim.world().faults.take_token_failure(Utc::now());
    match outage {
        Some(TokenFailureKind::ServerError) => {
            return Err(SimError::oauth(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the token endpoint is unavailable (injected)",
            ));
        }
        Some(TokenFailureKind::Timeout) => {
            // dropped with the connection when the caller gives up first
            tokio::select! {
                _ = sim.shutdown.cancelled() => {}
                _ = tokio::time::sleep(TOKEN_TIMEOUT_HANG) => {}
            }
            return Err(SimError::oauth(
                StatusCode::GATEWAY_TIMEOUT,
                "temporarily_unavailable",
                "the token endpoint timed out (injected)",
            ));
        }
        None => {}
    }
    let Form(form) = form.map_err(|e| SimError::oauth(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let invalid_client = || {
        SimError::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let (client_id, secret) = client_credentials(&headers, &form).ok_or_else(invalid_client)?;
    let now = Utc::now();
    let mut world = sim.world();
    let client = world.clients.get(&client_id).ok_or_else(invalid_client)?;
    if !sepay_crypto::constant_time_eq(client.client_secret.as_bytes(), secret.as_bytes()) {
        return Err(invalid_client());
    }
    let grant = |d: &str| SimError::oauth(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let (company_id, scopes, keep_refresh) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").ok_or_else(|| grant("code is required"))?;
            let entry = world
                .codes
                .get_mut(code)
                .ok_or_else(|| grant("unknown authorization code"))?;
            if entry.used {
                return Err(grant("authorization code already used"));
            }
            // a code is spent by any attempt to redeem it
            entry.used = true;
            if entry.expires_at <= now {
                return Err(grant("authorization code expired"));
            }
            if entry.client_id != client_id {
                return Err(grant("authorization code was issued to another client"));
            }
            if form.get("redirect_uri") != Some(&entry.redirect_uri) {
                return Err(grant("redirect_uri does not match the authorization request"));
            }
            if let Some(challenge) = &entry.code_challenge {
                let verifier = form
                    .get("code_verifier")
                    .ok_or_else(|| grant("code_verifier is required"))?;
                let computed = URL_SAFE_NO_PAD.encode(sepay_crypto::sha256(verifier.as_bytes()));
                if !sepay_crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(grant("code_verifier does not match"));
                }
            }
            (entry.company_id, entry.scopes.clone(), None)
        }
        Some("refresh_token") => {
            let presented = form
                .get("refresh_token")
                .ok_or_else(|| grant("refresh_token is required"))?;
            let entry = world
                .refresh_tokens
                .get(presented)
                .ok_or_else(|| grant("unknown refresh token"))?;
            if !entry.is_live(now) || entry.client_id != client_id {
                return Err(grant("refresh token is invalid, expired or revoked"));
            }
            let keep = (!sim.config.sim_rotate_refresh_tokens).then(|| presented.clone());
            let grant = (entry.company_id, entry.scopes.clone(), keep);
            if sim.config.sim_rotate_refresh_tokens {
                if let Some(old) = world.refresh_tokens.get_mut(presented) {
                    old.revoked = true;
                }
            }
            grant
        }
        _ => {
            return Err(SimError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ));
        }
    };
    let ttl = sim.config.sim_access_token_ttl_secs as i64;
    let scope = scopes.join(" ");
    let access = sim.jwt(company_id, &client_id, &scope, now.timestamp(), now.timestamp() + ttl);
    world.access_tokens.insert(
        access.clone(),
        Grant {
            client_id: client_id.clone(),
            company_id,
            scopes: scopes.clone(),
            expires_at: now + chrono::Duration::seconds(ttl),
            revoked: false,
        },
    );
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": ttl, "scope": scope});
    if keep_refresh.is_none() {
        let refresh = random_token("spr_");
        world.refresh_tokens.insert(
            refresh.clone(),
            Grant {
                client_id,
                company_id,
                scopes,
                expires_at: now + chrono::Duration::seconds(sim.config.sim_refresh_token_ttl_secs as i64),
                revoked: false,
            },
        );
        body["refresh_token"] = json!(refresh);
    }
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// RFC 7009: revokes an access or refresh token; always 200.
async fn revoke(State(sim): State<Arc<Sim>>, Form(form): Form<HashMap<String, String>>) -> StatusCode {
    if let Some(token) = form.get("token") {
        sim.revoke_token(token);
    }
    StatusCode::OK
}

impl Sim {
    pub fn revoke_token(&self, token: &str) -> bool {
        let mut guard = self.world();
        let world = &mut *guard;
        let mut found = false;
        for map in [&mut world.access_tokens, &mut world.refresh_tokens] {
            if let Some(g) = map.get_mut(token) {
                g.revoked = true;
                found = true;
            }
        }
        found
    }

    /// Revokes every token (access and refresh) and every unused code of the grants matching
    /// `client_id` and/or `company_id`, as revoking the application in SePay's dashboard would.
    /// With `delete_webhooks`, the webhooks those clients created through the API go too.
    pub fn revoke_grants(
        &self,
        client_id: Option<&str>,
        company_id: Option<Id>,
        delete_webhooks: bool,
    ) -> Result<GrantRevocation, SimError> {
        if client_id.is_none() && company_id.is_none() {
            return Err(SimError::invalid("client_id", "client_id or company_id is required"));
        }
        let mut guard = self.world();
        let world = &mut *guard;
        if let Some(id) = client_id {
            let client = world.clients.get(id).ok_or(SimError::NotFound("oauth client"))?;
            if company_id.is_some_and(|c| c != client.company_id) {
                return Err(SimError::invalid("company_id", "the client belongs to another company"));
            }
        }
        if let Some(id) = company_id {
            if !world.companies.contains_key(&id) {
                return Err(SimError::NotFound("company"));
            }
        }
        let matches =
            |c: &str, company: Id| client_id.is_none_or(|id| id == c) && company_id.is_none_or(|id| id == company);
        let mut revocation = GrantRevocation::default();
        for (map, count) in [
            (&mut world.access_tokens, &mut revocation.revoked_access_tokens),
            (&mut world.refresh_tokens, &mut revocation.revoked_refresh_tokens),
        ] {
            for grant in map
                .values_mut()
                .filter(|g| !g.revoked && matches(&g.client_id, g.company_id))
            {
                grant.revoked = true;
                *count += 1;
            }
        }
        for code in world.codes.values_mut().filter(|c| matches(&c.client_id, c.company_id)) {
            code.used = true;
        }
        if delete_webhooks {
            let doomed: Vec<Id> = world
                .webhooks
                .values()
                .filter(|w| w.created_by.as_deref().is_some_and(|c| matches(c, w.company_id)))
                .map(|w| w.id)
                .collect();
            for id in doomed {
                let by = format!(
                    "grant_revoked:{}",
                    world.webhooks[&id].created_by.as_deref().unwrap_or_default()
                );
                world.remove_webhook(id, by);
                revocation.deleted_webhooks.push(id);
            }
        }
        Ok(revocation)
    }

    /// An access token shaped like SePay's: a JWT (HS256) with iss, sub, aud, exp, iat, scope.
    fn jwt(&self, company_id: Id, client_id: &str, scope: &str, iat: i64, exp: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": self.base_url, "sub": company_id.to_string(), "aud": client_id,
            "iat": iat, "exp": exp, "scope": scope, "jti": random_token(""),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(&self.jwt_key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Rate limit, armed faults, then the token itself (401: unknown, expired or revoked) and
    /// its scope (403). Returns the company.
    pub fn authorize_bearer(&self, headers: &HeaderMap, scope: &'static str) -> Result<Id, SimError> {
        self.authorize_bearer_client(headers, scope).map(|(company, _)| company)
    }

    /// As [`Sim::authorize_bearer`], also returning the OAuth client the token was issued to.
    pub fn authorize_bearer_client(&self, headers: &HeaderMap, scope: &'static str) -> Result<(Id, String), SimError> {
        let token = bearer(headers).ok_or(SimError::Unauthorized)?;
        self.gate(token)?;
        let world = self.world();
        let grant = world
            .access_tokens
            .get(token)
            .filter(|g| g.is_live(Utc::now()))
            .ok_or(SimError::Unauthorized)?;
        if !grant.scopes.iter().any(|s| s == scope) {
            return Err(SimError::Forbidden(scope));
        }
        Ok((grant.company_id, grant.client_id.clone()))
    }

    /// The legacy API token of a company.
    pub fn authorize_api_token(&self, headers: &HeaderMap) -> Result<Id, SimError> {
        let token = bearer(headers).ok_or(SimError::Unauthorized)?;
        self.gate(token)?;
        self.world().company_by_api_token(token).ok_or(SimError::Unauthorized)
    }

    fn gate(&self, token: &str) -> Result<(), SimError> {
        let header = match self.config.sim_retry_after_style {
            RetryAfterStyle::V1 => "x-sepay-userapi-retry-after",
            RetryAfterStyle::V2 => "retry-after",
        };
        {
            let mut world = self.world();
            if Faults::take(&mut world.faults.api_429) {
                return Err(SimError::RateLimited { header });
            }
            if Faults::take(&mut world.faults.api_5xx) {
                return Err(SimError::Injected);
            }
        }
        if !self.admit(token) {
            return Err(SimError::RateLimited { header });
        }
        Ok(())
    }
}

/// What [`Sim::revoke_grants`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct GrantRevocation {
    pub revoked_access_tokens: usize,
    pub revoked_refresh_tokens: usize,
    pub deleted_webhooks: Vec<Id>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub fn random_token(prefix: &str) -> String {
    let secret = sepay_crypto::generate_secret(prefix);
    secret.expose().to_owned()
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}}button{{margin-right:1em;padding:.5em 1.5em}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>"
    )
}
