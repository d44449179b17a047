//! What the command-line tools (`sepayctl`, `sepay-dev`) share: their global options, and their
//! output, text for people and JSON for scripts.

use serde::Serialize;

/// What both command-line tools take before their command: output form, where Postgres and NATS
/// are, development mode, and the ingress's public URL.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOptions {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub db: sepay_store::DbConfig,
    #[command(flatten)]
    pub nats: sepay_bus::NatsConfig,
    #[command(flatten)]
    pub dev: crate::DevMode,
    /// Base URL SePay reaches the ingress at (webhook URLs are built from it). While this is the
    /// default, a running `sepay-dev up`'s.
    #[arg(
        long,
        env = "PUBLIC_BASE_URL",
        default_value = crate::DEFAULT_PUBLIC_BASE_URL,
        global = true
    )]
    pub public_base_url: String,
    /// Where sepay-dev keeps its local state: the private Postgres and NATS, up.log, and up.json,
    /// which tells the other commands where a running `up` listens. Default: sepay-dev/ in the
    /// target directory of this binary.
    #[arg(long, env = "SEPAY_DEV_DIR", global = true)]
    pub sepay_dev_dir: Option<std::path::PathBuf>,
}

impl GlobalOptions {
    /// See [`crate::dev_dir::dev_dir`].
    pub fn dev_dir(&self) -> anyhow::Result<std::path::PathBuf> {
        crate::dev_dir::dev_dir(self.sepay_dev_dir.as_deref())
    }

    /// The `sepay-dev up` running on this checkout's state, if any.
    pub fn running_up(&self) -> Option<crate::dev_dir::RunningUp> {
        crate::dev_dir::RunningUp::find(&self.dev_dir().ok()?)
    }

    /// An address setting: `explicit` when given, else what a running `up` says (`of_up`), else
    /// `default`.
    pub fn address(
        &self,
        explicit: Option<&str>,
        of_up: impl FnOnce(crate::dev_dir::RunningUp) -> Option<String>,
        default: &str,
    ) -> String {
        explicit
            .map(str::to_owned)
            .or_else(|| self.running_up().and_then(of_up))
            .unwrap_or_else(|| default.to_owned())
    }

    /// `PUBLIC_BASE_URL` set to something else than its default, else a running `up`'s, else
    /// the default.
    pub fn public_base_url(&self) -> String {
        self.address(
            self.public_base_url_set(),
            |up| Some(up.public_base_url),
            crate::DEFAULT_PUBLIC_BASE_URL,
        )
    }

    /// `PUBLIC_BASE_URL` unless it is the default (which `up` replaces with its own ingress).
    pub fn public_base_url_set(&self) -> Option<&str> {
        (self.public_base_url != crate::DEFAULT_PUBLIC_BASE_URL).then_some(self.public_base_url.as_str())
    }
}

/// Prints `value` as JSON, or `text` for people.
pub fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        out(&serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    } else {
        out(&text());
    }
}

/// A line on stdout. A reader that went away (`… | head`) ends the command quietly, as other
/// command-line tools do, where `println!` would panic on the broken pipe.
pub fn out(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush())
        && err.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// One line on stderr, `<program>: error: …` (and a JSON object on stdout with --json).
pub fn error(program: &str, json: bool, err: &anyhow::Error) {
    let message = format!("{err:#}");
    if json {
        out(&serde_json::json!({ "error": message }).to_string());
    }
    eprintln!("{program}: error: {message}");
}

/// Prints `program`'s completion script for `shell` on stdout.
pub fn completions<C: clap::CommandFactory>(shell: clap_complete::Shell, program: &str) {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut C::command(), program, &mut out);
    out_raw(&out);
}

/// Bytes on stdout, ending quietly on a broken pipe like [`out`].
fn out_raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(bytes).and_then(|()| stdout.flush())
        && err.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}
