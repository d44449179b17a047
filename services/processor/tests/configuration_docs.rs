//! docs/configuration.md's tables against `sepay-processor --help`: every variable the binary reads is
//! documented with its flag and default, and every variable its sections document is read.

use clap::CommandFactory;
use sepay_processor::Cli;

/// The doc sections describing `sepay-processor`.
const SECTIONS: &[&str] = &["Postgres and NATS", "HTTP limits", "sepay-processor", "Classification"];

#[test]
fn processor_help_matches_the_configuration_doc() {
    sepay_testkit::assert_help_matches_docs(Cli::command(), SECTIONS);
}

#[test]
fn every_processor_setting_has_an_environment_variable() {
    assert_eq!(
        sepay_testkit::config_docs::settings_without_env(&Cli::command()),
        Vec::<String>::new()
    );
}
