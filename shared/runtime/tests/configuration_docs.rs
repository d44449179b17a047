//! docs/configuration.md's tables of the shared settings against their command-line arguments
//! (every binary flattens these; each service's own `configuration_docs` test checks the whole).

use clap::{Args, Command};
use sepay_runtime::{DevMode, HttpLimits};

#[test]
fn http_limits_match_the_configuration_doc() {
    sepay_testkit::assert_help_matches_docs(HttpLimits::augment_args(Command::new("http-limits")), &["HTTP limits"]);
}

#[test]
fn development_mode_matches_the_configuration_doc() {
    sepay_testkit::assert_help_matches_docs(DevMode::augment_args(Command::new("dev-mode")), &["Development mode"]);
}
