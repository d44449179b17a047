//! `sepay-dev test`: the README's test command. Postgres and NATS are started where none answer
//! (`local.rs`); cargo-nextest, and Chromium for the browser test, are installed if missing; then
//! `cargo nextest run --workspace --no-fail-fast` runs with the URLs of what answers.

use crate::Cli;
use anyhow::Context;
use std::process::{Command, ExitCode};

#[derive(clap::Args)]
pub struct TestArgs {
    /// More arguments for `cargo nextest run` (after `--`), e.g. `-- -p sepay-core`.
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

pub async fn run(cli: &Cli, args: &TestArgs) -> ExitCode {
    match run_tests(cli, args).await {
        Ok(code) => code,
        Err(err) => {
            sepay_runtime::cli::error("sepay-dev test", cli.global.json, &err);
            ExitCode::FAILURE
        }
    }
}

async fn run_tests(cli: &Cli, args: &TestArgs) -> anyhow::Result<ExitCode> {
    // the tests make databases of their own on the server of TEST_DATABASE_URL (testkit's default)
    let mut database_url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut nats_url = cli.global.nats.nats_url.clone();
    let say = |line: &str| eprintln!("sepay-dev test: {line}");
    let _infra = crate::local::ensure(&cli.global.dev_dir()?, &mut database_url, &mut nats_url, &say).await?;
    // the connector's browser test drives headless Chromium
    if !std::path::Path::new("/usr/bin/chromedriver").exists() {
        crate::local::install("Chromium", "the browser test", &["chromium", "chromium-driver"], &say)?;
    }
    if !Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        say("cargo-nextest is not installed: cargo install --locked cargo-nextest");
        let installed = Command::new("cargo")
            .args(["install", "--locked", "cargo-nextest"])
            .status()
            .context("cannot run cargo")?;
        anyhow::ensure!(
            installed.success(),
            "cargo-nextest could not be installed (cargo install --locked cargo-nextest)"
        );
    }
    let status = tokio::task::spawn_blocking({
        let extra = args.nextest_args.clone();
        move || {
            Command::new("cargo")
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(extra)
                .env("TEST_DATABASE_URL", &database_url)
                .env("NATS_URL", &nats_url)
                .status()
        }
    })
    .await?
    .context("cannot run cargo nextest")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
