//! The development tools' surface; each command is exercised by the integration suite
//! (services/integration) and the fault suite below.

use std::process::Command;

#[test]
fn sepay_dev_has_the_development_tools() {
    let out = Command::new(env!("CARGO_BIN_EXE_sepay-dev"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "up",
        "test",
        "demo",
        "sim",
        "striga-trigger",
        "bench",
        "faults",
        "completions",
    ] {
        assert!(help.contains(&format!("\n  {command} ")), "{command} missing:\n{help}");
    }
    // running a service alone is for the bench and the fault suite: hidden, still there
    let serve = Command::new(env!("CARGO_BIN_EXE_sepay-dev"))
        .args(["serve", "ingress", "--help"])
        .output()
        .unwrap();
    assert!(serve.status.success());
}

/// docs/configuration.md's tables against the command line: `up` takes every service's settings,
/// so every section but logging (environment only) describes `sepay-dev`.
#[test]
fn sepay_dev_help_matches_the_configuration_doc() {
    use clap::CommandFactory;
    sepay_testkit::assert_help_matches_docs(
        sepay_dev::Cli::command(),
        &[
            "Postgres and NATS",
            "Development mode",
            "HTTP limits",
            "sepay-ingress",
            "sepay-processor",
            "Classification",
            "sepay-provisioner",
            "SePay client",
            "sepay-connector",
            "sepay-sim",
            "sepay-dev",
        ],
    );
}

/// `up --help` groups its ~90 options by service, under help headings.
#[test]
fn up_help_is_grouped_by_service() {
    let out = Command::new(env!("CARGO_BIN_EXE_sepay-dev"))
        .args(["up", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Ingress:",
            "Processor:",
            "SePay simulator:",
            "Connector (admin pages, OAuth):",
            "Provisioner:",
            "SePay client:",
            "HTTP limits (every listener):"
        ],
        "{help}"
    );
    // up's own options come first, under Options
    let options = help.split("Ingress:").next().unwrap();
    assert!(options.contains("--demo") && options.contains("--verbose"), "{options}");
}

/// Every flag an environment variable also sets is named after it (`--nats-url` for `NATS_URL`),
/// and each variable is read by one flag per command.
#[test]
fn flags_are_named_after_their_environment_variables() {
    use clap::CommandFactory;
    let drift = sepay_testkit::flags_not_named_after_env(&sepay_dev::Cli::command());
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}
