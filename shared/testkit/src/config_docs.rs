//! docs/configuration.md against the binaries' command lines: each binary's test hands its
//! `clap::Command` and the doc sections that describe it to [`assert_help_matches_docs`], so a
//! setting, its environment variable, its `--flag` and its default cannot drift from the tables.

use std::collections::{BTreeMap, BTreeSet};

/// The configuration reference, read at test time.
pub const CONFIGURATION_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");

/// One row of a settings table: a row naming two variables (`SEPAY_CLIENT_ID`,
/// `SEPAY_CLIENT_SECRET`) gives two settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentedSetting {
    /// The heading the table is under.
    pub section: String,
    pub variable: String,
    /// The default cell as written (backticks, `*(unset…)*` and all).
    pub default: String,
    pub meaning: String,
}

/// The settings table of `section`: the heading whose text is `section`, or starts with
/// `section (` (so `"HTTP limits"` finds `## HTTP limits (every listener: …)`). Panics unless
/// exactly one heading matches and a table with rows follows it before the next heading.
pub fn documented_rows(section: &str) -> Vec<DocumentedSetting> {
    let doc = std::fs::read_to_string(CONFIGURATION_DOC).unwrap_or_else(|e| panic!("{CONFIGURATION_DOC}: {e}"));
    rows_of(&doc, section)
}

/// `(variable, default as written)` of every setting in `section` (see [`documented_rows`]).
pub fn documented_settings(section: &str) -> Vec<(String, String)> {
    documented_rows(section)
        .into_iter()
        .map(|row| (row.variable, row.default))
        .collect()
}

/// A default cell or a clap default, compared: backticks stripped, and an italic note
/// (`*(empty)*`, `*(unset: any source)*`, `*(required; …)*`) means "no default, or empty".
pub fn normalize_default(written: &str) -> String {
    let text = written.trim();
    if text.starts_with('*') && text.ends_with('*') {
        return String::new();
    }
    text.replace('`', "").trim().to_owned()
}

/// The flag a variable's command-line twin has by the rule (`DATABASE_URL` → `database-url`).
pub fn twin_of(variable: &str) -> String {
    variable.to_ascii_lowercase().replace('_', "-")
}

/// Checks `cmd` (a binary's `Cli::command()`, subcommands included) against the tables of
/// `sections`:
/// - every environment variable an argument reads is documented in one of them, with the same
///   default (see [`normalize_default`]);
/// - its long flag is the variable's twin (`--database-url`), or the documented row names the
///   flag it has instead (`` `--dev-mode` `` in the meaning);
/// - every variable those sections document is read by some argument.
///
/// Panics listing every disagreement.
pub fn assert_help_matches_docs(cmd: clap::Command, sections: &[&str]) {
    let name = cmd.get_name().to_owned();
    let rows: Vec<DocumentedSetting> = sections.iter().flat_map(|s| documented_rows(s)).collect();
    let problems = disagreements(cmd, &rows);
    assert!(
        problems.is_empty(),
        "{name} --help and docs/configuration.md disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// What [`assert_help_matches_docs`] reports, one line each.
fn disagreements(mut cmd: clap::Command, rows: &[DocumentedSetting]) -> Vec<String> {
    cmd.build();
    let sections: BTreeSet<&str> = rows.iter().map(|row| row.section.as_str()).collect();
    let mut documented: BTreeMap<&str, Vec<&DocumentedSetting>> = BTreeMap::new();
    for row in rows {
        documented.entry(row.variable.as_str()).or_default().push(row);
    }
    let name = cmd.get_name().to_owned();
    let mut problems = Vec::new();
    let mut read = BTreeSet::new();
    for arg in arguments(&cmd) {
        let Some(variable) = arg.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        read.insert(variable.to_owned());
        let Some(documented) = documented.get(variable) else {
            problems.push(format!(
                "{variable} (--{}) is read but not documented in {sections:?}",
                arg.get_long().unwrap_or("?")
            ));
            continue;
        };
        match arg.get_long() {
            None => problems.push(format!("{variable} has no command-line twin")),
            Some(long) => {
                let named = format!("`--{long}`");
                if long != twin_of(variable) && !documented.iter().any(|row| row.meaning.contains(&named)) {
                    problems.push(format!(
                        "{variable}'s flag is --{long}, not --{}: rename it or name `--{long}` in its documented meaning",
                        twin_of(variable)
                    ));
                }
            }
        }
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy())
            .collect::<Vec<_>>()
            .join(",");
        for row in documented {
            if normalize_default(&default) != normalize_default(&row.default) {
                problems.push(format!(
                    "{variable}: the binary's default is {default:?}, \"{}\" documents {:?}",
                    row.section, row.default
                ));
            }
        }
    }
    for row in rows {
        if !read.contains(&row.variable) {
            problems.push(format!(
                "{} is documented under \"{}\" but {name} does not read it",
                row.variable, row.section
            ));
        }
    }
    // a global argument is met again in every subcommand
    problems.sort();
    problems.dedup();
    problems
}

/// Arguments that are settings but have no environment variable (built-in `--help` and
/// `--version` and positionals aside): the configuration doc promises every setting has one.
/// Only `cmd`'s own arguments are looked at, not its subcommands'.
pub fn settings_without_env(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|arg| !arg.is_positional() && arg.get_env().is_none())
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .map(|arg| arg.get_id().to_string())
        .collect()
}

fn arguments(cmd: &clap::Command) -> Vec<&clap::Arg> {
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().collect();
    for sub in cmd.get_subcommands() {
        args.extend(arguments(sub));
    }
    args
}

fn heading(line: &str) -> Option<&str> {
    let text = line.trim_start_matches('#');
    (text.len() < line.len() && text.starts_with(' ')).then(|| text.trim())
}

fn rows_of(doc: &str, section: &str) -> Vec<DocumentedSetting> {
    let lines: Vec<&str> = doc.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| heading(line).is_some_and(|h| h == section || h.starts_with(&format!("{section} ("))))
        .map(|(i, _)| i)
        .collect();
    let [start] = starts[..] else {
        panic!(
            "docs/configuration.md: {} headings match {section:?} (one expected)",
            starts.len()
        );
    };
    let title = heading(lines[start]).unwrap_or(section).to_owned();
    let mut rows = Vec::new();
    let mut header_seen = false;
    for line in lines[start + 1..].iter().take_while(|line| heading(line).is_none()) {
        let line = line.trim();
        if !line.starts_with('|') {
            if header_seen {
                break; // the first table only
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !header_seen {
            header_seen = true; // | variable | default | meaning |
            continue;
        }
        if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
            continue;
        }
        let [variables, default, meaning @ ..] = &cells[..] else {
            panic!("docs/configuration.md, {title}: a row without a default cell: {line}");
        };
        let meaning = meaning.join("|");
        for variable in backticked(variables) {
            rows.push(DocumentedSetting {
                section: title.clone(),
                variable,
                default: (*default).to_owned(),
                meaning: meaning.clone(),
            });
        }
    }
    assert!(!rows.is_empty(), "docs/configuration.md, {title}: no settings table");
    rows
}

/// `` `A`, `B` `` → A, B; a cell without backticks is one name.
fn backticked(cell: &str) -> Vec<String> {
    let quoted: Vec<String> = cell
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if quoted.is_empty() {
        vec![cell.trim().to_owned()]
    } else {
        quoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# Configuration

## Shared (every binary)

| variable | default | meaning |
| --- | --- | --- |
| `A_URL` | `http://x` | a URL |
| `B_ID`, `B_SECRET` | *(empty)* | the client |

### Shared details

| variable | default | meaning |
| --- | --- | --- |
| `C` | `1` | development mode (`--see`) |

After the table.

| other | table |
| --- | --- |
| `D` | ignored |
";

    #[test]
    fn a_section_is_its_heading_or_the_heading_before_a_parenthesis() {
        let shared = rows_of(DOC, "Shared");
        let names: Vec<&str> = shared.iter().map(|r| r.variable.as_str()).collect();
        assert_eq!(names, ["A_URL", "B_ID", "B_SECRET"]);
        assert_eq!(shared[0].section, "Shared (every binary)");
        assert_eq!(shared[1].default, "*(empty)*");
        let details = rows_of(DOC, "Shared details");
        assert_eq!(details.len(), 1, "the first table only");
        assert_eq!(details[0].meaning, "development mode (`--see`)");
    }

    #[test]
    #[should_panic(expected = "0 headings match")]
    fn an_unknown_section_is_an_error() {
        rows_of(DOC, "Missing");
    }

    #[test]
    fn defaults_compare_without_markup() {
        assert_eq!(normalize_default("`4096`"), "4096");
        assert_eq!(normalize_default("*(unset: any source)*"), "");
        assert_eq!(normalize_default("*(empty)*"), normalize_default(""));
        assert_eq!(twin_of("DB_MAX_CONNECTIONS"), "db-max-connections");
    }

    fn command() -> clap::Command {
        use clap::{Arg, ArgAction, Command};
        Command::new("bin")
            .arg(Arg::new("a").long("a-url").env("A_URL").default_value("http://x"))
            .arg(Arg::new("id").long("b-id").env("B_ID").default_value(""))
            .arg(Arg::new("secret").long("b-secret").env("B_SECRET"))
            .subcommand(Command::new("sub").arg(Arg::new("c").long("see").env("C").default_value("1")))
            .arg(
                Arg::new("flag")
                    .long("flag")
                    .env("FLAG")
                    .action(ArgAction::SetTrue)
                    .global(true),
            )
    }

    #[test]
    fn a_command_that_follows_its_sections_passes() {
        let mut rows = rows_of(DOC, "Shared");
        rows.extend(rows_of(DOC, "Shared details"));
        rows.push(DocumentedSetting {
            section: "Flags".into(),
            variable: "FLAG".into(),
            default: "`false`".into(),
            meaning: "a flag".into(),
        });
        assert_eq!(disagreements(command(), &rows), Vec::<String>::new());

        // the rows of a section the binary does not read
        let mut more = rows.clone();
        more.push(DocumentedSetting {
            section: "Other".into(),
            variable: "UNREAD".into(),
            default: "`2`".into(),
            meaning: String::new(),
        });
        assert_eq!(
            disagreements(command(), &more),
            ["UNREAD is documented under \"Other\" but bin does not read it"]
        );

        // a changed default, a flag renamed without a word in the doc, a setting undocumented
        let mut changed = rows.clone();
        changed[0].default = "`http://y`".into();
        changed[3].meaning = "development mode".into();
        changed.retain(|row| row.variable != "B_SECRET");
        let problems = disagreements(command(), &changed);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("A_URL: the binary's default is \"http://x\""),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("B_SECRET (--b-secret) is read but not documented"),
            "{problems:#?}"
        );
        assert!(problems[2].starts_with("C's flag is --see, not --c"), "{problems:#?}");
    }

    #[test]
    fn the_configuration_doc_parses() {
        let doc = std::fs::read_to_string(CONFIGURATION_DOC).unwrap();
        let sections: Vec<&str> = doc
            .lines()
            .filter_map(heading)
            .filter(|h| *h != "Configuration")
            .collect();
        assert!(!sections.is_empty());
        for section in sections {
            for row in rows_of(&doc, section) {
                assert!(
                    row.variable
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                    "{section}: {:?} is not a variable name",
                    row.variable
                );
            }
        }
    }
}

/// The flags of `cmd` and its subcommands that an environment variable also sets but that are
/// not named after it (`--connector-url` for `CONNECTOR_PUBLIC_URL`), and the variables two flags
/// of one command read; empty when none.
pub fn flags_not_named_after_env(cmd: &clap::Command) -> Vec<String> {
    fn walk(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        let mut readers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for arg in command.get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let env = env.to_string_lossy().into_owned();
            if long != env.to_lowercase().replace('_', "-") {
                found.push(format!("{path} --{long} reads {env}"));
            }
            readers.entry(env).or_default().push(format!("--{long}"));
        }
        for (env, flags) in readers.into_iter().filter(|(_, flags)| flags.len() > 1) {
            found.push(format!("{path}: {env} is read by {}", flags.join(" and ")));
        }
        for sub in command.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }
    let mut found = Vec::new();
    walk(cmd, cmd.get_name(), &mut found);
    found
}
