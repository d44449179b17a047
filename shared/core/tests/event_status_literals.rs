//! `sepay_webhook_events.status` is spelled in one place, `shared/core/src/lifecycle.rs`: the
//! workspace's production sources take statuses from `EventStatus` (and bind them in SQL), so a
//! search for a status finds the lifecycle and nothing that could drift from it.
//!
//! The scan reads every `.rs` file under `services/*/src` and `shared/*/src` and looks inside
//! string literals for a status spelled as a whole literal (`"failed"`) or as a SQL literal
//! (`'failed'`). Integration tests are not scanned: they may read back what is stored.

use sepay_core::EventStatus;
use std::path::{Path, PathBuf};

/// The one module that spells statuses.
const LIFECYCLE: &str = "shared/core/src/lifecycle.rs";

/// The same words meaning something else: (file path ending, text of the line, why).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "shared/core/src/striga.rs",
        "Self::Failed => \"failed\"",
        "a Striga payout's status (`PayoutStatus`)",
    ),
    (
        "shared/store/src/provisioning.rs",
        "then 'succeeded' else 'failed' end",
        "a reconciliation run's status",
    ),
    (
        "src/control.rs",
        "run.status == \"failed\"",
        "a provisioning run's status (sepayctl)",
    ),
    (
        "services/processor/src/worker.rs",
        "Booked::DuplicateOf(_) => \"duplicate\"",
        "the settled-outcome metric label",
    ),
    (
        "services/ingress/src/routes.rs",
        "Recorded::Duplicate(_) => (\"duplicate\", json!({\"success\": true, \"duplicate\": true}))",
        "the delivery-outcome metric label and SePay's `duplicate` answer field",
    ),
    (
        "src/demo.rs",
        "b.contains(\"duplicate\")",
        "SePay's `duplicate` answer field",
    ),
    (
        "src/bench.rs",
        "\"failed\": ",
        "a count of failed requests in the bench report",
    ),
];

#[test]
fn event_statuses_are_spelled_only_in_the_lifecycle_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for top in ["services", "shared"] {
        for krate in dir(&root.join(top)) {
            rust_files(&krate.join("src"), &mut files);
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with(LIFECYCLE)),
        "the scan must see the lifecycle module"
    );
    let mut found = Vec::new();
    for file in &files {
        let path = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        if path.ends_with(LIFECYCLE) {
            continue;
        }
        let source = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        for (start, literal) in string_literals(&source) {
            for line in status_lines(&literal) {
                let line = start + line;
                let text = lines.get(line - 1).copied().unwrap_or_default();
                let allowed = ALLOWED
                    .iter()
                    .any(|(file, snippet, _)| path.ends_with(file) && text.contains(snippet));
                let hit = format!("{path}:{line}: {}", text.trim());
                if !allowed && !found.contains(&hit) {
                    found.push(hit);
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "event statuses spelled outside {LIFECYCLE}; use EventStatus (bound as a parameter in SQL):\n{}",
        found.join("\n")
    );
}

/// The scan's own check: it finds statuses in Rust and SQL literals, and not in comments,
/// identifiers or character literals.
#[test]
fn the_scan_finds_literals() {
    let source = r####"
        // "failed" in a comment
        /* 'received' in a block comment */
        let a = "failed";
        let c = '"'; let l: &'static str = x;
        let b = r#"update t set status = 'processed'"#;
        let failed = b"x";
    "####;
    let literals: Vec<(usize, String)> = string_literals(source);
    assert_eq!(
        literals,
        [
            (4, "failed".to_owned()),
            (6, "update t set status = 'processed'".to_owned()),
            (7, "x".to_owned()),
        ]
    );
    assert_eq!(status_lines("failed"), [0]);
    assert_eq!(
        status_lines("select 1\n where status in ('received', 'failed')"),
        [1, 1]
    );
    assert!(status_lines("failed_x 'unknown' received").is_empty());
}

/// Lines (0-based, within the literal) where it holds a status: the whole literal, or a SQL
/// literal inside it.
fn status_lines(literal: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for status in EventStatus::ALL {
        let word = status.as_str();
        if literal == word {
            lines.push(0);
        }
        for (at, _) in literal.match_indices(&format!("'{word}'")) {
            lines.push(literal[..at].matches('\n').count());
        }
    }
    lines
}

fn dir(path: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    for entry in dir(path) {
        if entry.is_dir() {
            rust_files(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
}

/// The string literals of Rust source (plain, byte and raw), with the line each starts on;
/// comments and character literals are skipped. Escapes are kept as written.
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if !ident_before && (c == 'r' && matches!(at(i + 1), '#' | '"') || c == 'b' && at(i + 1) == 'r') {
            // raw string: r"…", r#"…"#, br"…"
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                i += 1;
                continue;
            }
            let (start_line, start) = (line, j + 1);
            let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let mut k = start;
            while k < chars.len() && !chars[k..].starts_with(&close) {
                line += usize::from(chars[k] == '\n');
                k += 1;
            }
            out.push((start_line, chars[start..k.min(chars.len())].iter().collect()));
            i = k + close.len();
        } else if c == '"' {
            let (start_line, mut k) = (line, i + 1);
            let mut text = String::new();
            while k < chars.len() && chars[k] != '"' {
                if chars[k] == '\\' {
                    text.push(chars[k]);
                    k += 1;
                }
                line += usize::from(at(k) == '\n');
                text.push(at(k));
                k += 1;
            }
            out.push((start_line, text));
            i = k + 1;
        } else if c == '\'' {
            // a character literal ('x', '\n', '\u{1f}') or a lifetime ('a)
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}
