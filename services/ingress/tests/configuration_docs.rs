//! docs/configuration.md's tables against `sepay-ingress --help`: every variable the binary reads is
//! documented with its flag and default, and every variable its sections document is read.

use clap::CommandFactory;
use sepay_ingress::Cli;

/// The doc sections describing `sepay-ingress`.
const SECTIONS: &[&str] = &["Postgres and NATS", "Development mode", "HTTP limits", "sepay-ingress"];

#[test]
fn ingress_help_matches_the_configuration_doc() {
    sepay_testkit::assert_help_matches_docs(Cli::command(), SECTIONS);
}

#[test]
fn every_ingress_setting_has_an_environment_variable() {
    assert_eq!(
        sepay_testkit::config_docs::settings_without_env(&Cli::command()),
        Vec::<String>::new()
    );
}
