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
        "links",
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

/// Every command and every flag says what it is for in `--help`: the whole command tree, each
/// argument but clap's own `--help` and `--version`.
#[test]
fn every_command_and_flag_has_help() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if cmd.get_about().is_none() {
            missing.push(format!("command `{path}`"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) || arg.get_help().is_some() {
                continue;
            }
            let name = arg
                .get_long()
                .map_or_else(|| format!("<{id}>"), |long| format!("--{long}"));
            missing.push(format!("`{path} {name}`"));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let cli = sepayctl::Cli::command();
    cli.clone().debug_assert();
    let mut missing = Vec::new();
    walk(&cli, "sepayctl", &mut missing);
    assert!(missing.is_empty(), "no help text: {}", missing.join(", "));
}

/// A command line clap refuses exits with 2 (a failed command with 1; docs/operations.md).
#[test]
fn a_usage_error_exits_with_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_sepayctl"))
        .args(["wallet", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ws <WS>"));
}

/// Shell completions for every shell clap_complete knows, without a database.
#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = help(&["completions", shell]);
        assert!(
            script.contains("sepayctl") && script.contains("link-account"),
            "{shell}: {script}"
        );
    }
}

/// Every flag an environment variable also sets is named after it, one flag per variable.
#[test]
fn flags_are_named_after_their_environment_variables() {
    use clap::CommandFactory;
    let drift = sepay_testkit::flags_not_named_after_env(&sepayctl::Cli::command());
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}
