use crate::SimConfig;

/// sepay-sim: a SePay simulator (OAuth2, API, userapi, webhooks, faults).
#[derive(clap::Parser)]
#[command(name = "sepay-sim", version)]
pub struct Cli {
    #[command(flatten)]
    pub sim: SimConfig,
}
