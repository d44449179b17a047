//! The OAuth2 code flow with PKCE, refresh and revocation, through the `oauth2` crate running on
//! the workspace's reqwest.

use crate::client::SepayClient;
use crate::error::{ApiError, ApiResult};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use std::time::Duration;

/// Where to send the admin, and what to remember (in a cookie) for the callback.
pub struct AuthorizeRequest {
    pub url: String,
    pub state: String,
    pub pkce_verifier: String,
}

/// Tokens of a grant or refresh. `Debug` hides them.
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

impl SepayClient {
    fn oauth_urls(&self) -> ApiResult<(AuthUrl, TokenUrl)> {
        let base = self.base_url();
        let auth = AuthUrl::new(format!("{base}/oauth/authorize")).map_err(|e| ApiError::OAuth(e.to_string()))?;
        let token = TokenUrl::new(format!("{base}/oauth/token")).map_err(|e| ApiError::OAuth(e.to_string()))?;
        Ok((auth, token))
    }

    fn client_id(&self) -> ClientId {
        ClientId::new(self.config.sepay_client_id.clone())
    }

    fn client_secret(&self) -> ClientSecret {
        ClientSecret::new(self.config.sepay_client_secret.clone())
    }

    /// The authorize URL with a fresh opaque state and a PKCE S256 challenge.
    pub fn authorize_request(&self, redirect_uri: &str) -> ApiResult<AuthorizeRequest> {
        let (auth, token) = self.oauth_urls()?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ApiError::OAuth(e.to_string()))?;
        let client = BasicClient::new(self.client_id())
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = sepay_crypto::generate_secret("").expose().to_owned();
        let (url, state) = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(
                self.config
                    .sepay_scopes
                    .split_whitespace()
                    .map(|s| Scope::new(s.to_owned())),
            )
            .set_pkce_challenge(challenge)
            .url();
        Ok(AuthorizeRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    pub async fn exchange_code(&self, code: &str, pkce_verifier: &str, redirect_uri: &str) -> ApiResult<TokenSet> {
        let (auth, token) = self.oauth_urls()?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ApiError::OAuth(e.to_string()))?;
        let client = BasicClient::new(self.client_id())
            .set_client_secret(self.client_secret())
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_redirect_uri(redirect)
            .set_auth_type(AuthType::RequestBody);
        let http = OAuthHttp(self.http.clone());
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&http)
            .await
            .map_err(|e| ApiError::OAuth(oauth_error(&e)))?;
        Ok(token_set(&response))
    }

    pub async fn refresh(&self, refresh_token: &str) -> ApiResult<TokenSet> {
        let (auth, token) = self.oauth_urls()?;
        let client = BasicClient::new(self.client_id())
            .set_client_secret(self.client_secret())
            .set_auth_uri(auth)
            .set_token_uri(token)
            .set_auth_type(AuthType::RequestBody);
        let http = OAuthHttp(self.http.clone());
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .request_async(&http)
            .await
            .map_err(|e| oauth_failure(&e))?;
        Ok(token_set(&response))
    }

    /// RFC 7009 revocation, best effort (SePay documents none; the simulator has one).
    pub async fn revoke(&self, token: &str) {
        let url = format!("{}/oauth/revoke", self.base_url());
        let form = [
            ("token", token),
            ("client_id", &self.config.sepay_client_id),
            ("client_secret", &self.config.sepay_client_secret),
        ];
        if let Err(err) = self.http.post(url).form(&form).send().await {
            tracing::info!(error = %err.without_url(), "token revocation not confirmed");
        }
    }
}

/// The `oauth2` crate's HTTP client on the workspace's reqwest (a named type with a `Send`
/// future, so token calls can run in spawned tasks).
struct OAuthHttp(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let http = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(e.without_url().to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
        })
    }
}

fn token_set(response: &oauth2::basic::BasicTokenResponse) -> TokenSet {
    TokenSet {
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_in: response.expires_in(),
        scopes: response
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// The provider's error code, never a token.
/// A failed refresh, kept apart by cause: SePay's OAuth error (its code decides whether the grant
/// is over), SePay unreachable or timing out (passing), anything else (passing too).
fn oauth_failure<E: std::error::Error>(
    err: &oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> ApiError {
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => ApiError::TokenRefused {
            code: r.error().to_string(),
            description: r.error_description().cloned().unwrap_or_default(),
        },
        oauth2::RequestTokenError::Request(e) => ApiError::Transport(format!("token endpoint: {e}")),
        other => ApiError::OAuth(oauth_error(other)),
    }
}

fn oauth_error<E: std::error::Error>(err: &oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>) -> String {
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => {
            format!("{} {}", r.error(), r.error_description().cloned().unwrap_or_default())
        }
        oauth2::RequestTokenError::Request(e) => format!("request failed: {e}"),
        oauth2::RequestTokenError::Parse(e, _) => format!("unreadable token response: {e}"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}
