//! The command-line tools' output (`sepayctl`, `sepay-dev`): text for people, JSON for scripts.

use serde::Serialize;

/// Prints `value` as JSON, or `text` for people.
pub fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        println!("{}", text());
    }
}

/// One line on stderr, `<program>: error: …` (and a JSON object on stdout with --json).
pub fn error(program: &str, json: bool, err: &anyhow::Error) {
    let message = format!("{err:#}");
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("{program}: error: {message}");
}
