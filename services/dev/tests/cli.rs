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
    for command in ["up", "demo", "sim", "bench", "faults"] {
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
