//! docs/configuration.md's tables against `sepay-connector --help`: every variable the binary reads is
//! documented with its flag and default, and every variable its sections document is read.

use clap::CommandFactory;
use sepay_connector::Cli;

/// The doc sections describing `sepay-connector`.
const SECTIONS: &[&str] = &[
    "Postgres and NATS",
    "Development mode",
    "HTTP limits",
    "SePay client",
    "sepay-connector",
];

#[test]
fn connector_help_matches_the_configuration_doc() {
    sepay_testkit::assert_help_matches_docs(Cli::command(), SECTIONS);
}

#[test]
fn every_connector_setting_has_an_environment_variable() {
    assert_eq!(
        sepay_testkit::config_docs::settings_without_env(&Cli::command()),
        Vec::<String>::new()
    );
}
