//! `sepayctl admin-token`: an admin session token and the connector's login link.

use crate::Cli;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct AdminTokenArgs {
    /// The workspace the login link opens.
    #[arg(long)]
    pub ws: Uuid,
    /// The platform user id (`workspace_members.user_id`, the token's `sub`).
    #[arg(long)]
    pub user: String,
    /// Lifetime of the token.
    #[arg(long, default_value_t = 480)]
    ttl_mins: u64,
    /// Also make the user an admin of the workspace (an owner stays owner).
    #[arg(long)]
    pub grant: bool,
    /// HS256 secret the connector verifies with (required unless SEPAY_DEV_MODE).
    #[arg(long, env = "ADMIN_JWT_SECRET", hide_env_values = true)]
    admin_jwt_secret: Option<String>,
    /// The connector's public origin, for the login link. Default: a running `sepay-dev up`'s,
    /// else http://127.0.0.1:8082.
    #[arg(long, env = "CONNECTOR_PUBLIC_URL")]
    connector_public_url: Option<String>,
}

/// Mints the token and prints the link (`--grant` is applied by the caller, which holds the
/// database).
pub fn admin_token(cli: &Cli, args: &AdminTokenArgs) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(args.ttl_mins * 60);
    let secret = sepay_connector::auth::jwt_secret(args.admin_jwt_secret.as_deref(), cli.global.dev.dev_mode)?;
    let token = sepay_connector::mint_admin_token(&secret, &args.user, ttl)?;
    let connector = cli.global.address(
        args.connector_public_url.as_deref(),
        |up| Some(up.connector_url),
        sepay_connector::DEFAULT_CONNECTOR_PUBLIC_URL,
    );
    let login_url = sepay_connector::login_url(&connector, &token, args.ws);
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
    let report = json!({"token": token, "login_url": login_url, "expires_at": expires_at, "granted": args.grant});
    sepay_runtime::cli::print(cli.global.json, &report, || {
        format!(
            "login link (valid until {}):\n  {login_url}",
            expires_at.format("%Y-%m-%d %H:%M UTC")
        )
    });
    Ok(())
}
