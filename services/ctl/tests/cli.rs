//! The operator CLI's surface: the commands an operator runs against production, and none of the
//! development tools (those are `sepay-dev`'s). The integration suite (services/integration)
//! drives every command against real services.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sepayctl"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn sepayctl_is_the_operator_cli_only() {
    let listed = commands(&help(&["--help"]));
    for operator in [
        "migrate",
        "workspace",
        "wallet",
        "link-account",
        "endpoint",
        "events",
        "transactions",
        "admin-token",
        "rules",
        "credits",
        "sync",
        "reconcile",
        "striga",
    ] {
        assert!(
            listed.iter().any(|c| c == operator),
            "{operator} missing from {listed:?}"
        );
    }
    for development in ["up", "demo", "bench", "faults", "sim", "serve", "junk"] {
        assert!(
            !listed.iter().any(|c| c == development),
            "{development} is sepay-dev's: {listed:?}"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_sepayctl"))
            .arg(development)
            .output()
            .unwrap();
        assert!(!out.status.success(), "sepayctl {development} must not exist");
    }
}

/// docs/configuration.md's tables against the command line: every variable `sepayctl` reads is
/// documented with its flag and default, and every variable its sections document is read.
#[test]
fn sepayctl_help_matches_the_configuration_doc() {
    use clap::CommandFactory;
    sepay_testkit::assert_help_matches_docs(
        sepayctl::Cli::command(),
        &["Postgres and NATS", "Development mode", "sepayctl"],
    );
}
