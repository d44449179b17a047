//! Text for people, JSON for scripts: every command prints through here.

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

/// One line on stderr (and a JSON object on stdout with --json).
pub fn error(json: bool, err: &anyhow::Error) {
    let message = format!("{err:#}");
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("sepayctl: error: {message}");
}
