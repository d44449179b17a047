//! Postgres and NATS for `up` and `test` on a machine where none answer: the README's two
//! commands need nothing started first.
//!
//! Where `DATABASE_URL` (or `NATS_URL`) names this machine and nothing answers there, a private
//! instance is started from the installed binaries: a Postgres cluster in
//! `<SEPAY_DEV_DIR>/postgres` (`target/sepay-dev/postgres` by default; as the `postgres` user
//! when run as root; trust authentication) and a nats-server with JetStream storing in
//! `<SEPAY_DEV_DIR>/nats`. They live as long as the
//! command and keep their data for the next run. Missing binaries are installed with apt-get
//! where that is possible (root, Debian); otherwise the command stops with one line saying what
//! to install. A server that already answers is used as it is, never touched.

use crate::faults::servers::{PrivateNats, PrivatePostgres, nats_server_bin, postgres_bin_dir};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// The private instances started, if any; dropping it stops them.
pub struct LocalInfra {
    _postgres: Option<PrivatePostgres>,
    _nats: Option<PrivateNats>,
}

/// Starts what is missing. `database_url` and `nats_url` are updated when a private instance had
/// to take another port (a server appeared on the configured one while packages were installed).
pub async fn ensure(
    dev_dir: &Path,
    database_url: &mut String,
    nats_url: &mut String,
    say: &dyn Fn(&str),
) -> anyhow::Result<LocalInfra> {
    let postgres = match local_port(database_url, 5432)? {
        Some(port) if !answers(port).await => {
            if postgres_bin_dir().is_none() {
                install("PostgreSQL", "nothing answers at DATABASE_URL", &["postgresql"], say)?;
            }
            let port = free_after_install(port).await?;
            let dir = dev_dir.join("postgres");
            say(&format!(
                "Postgres: nothing answered at DATABASE_URL; starting one on 127.0.0.1:{port} (data in {})",
                dir.display()
            ));
            let pg = PrivatePostgres::start_at(dir, port, false).await?;
            *database_url = with_port(database_url, port)?;
            Some(pg)
        }
        _ => None,
    };
    let nats = match local_port(nats_url, 4222)? {
        Some(port) if !answers(port).await => {
            if !std::path::Path::new(&nats_server_bin()).exists() {
                install("nats-server", "nothing answers at NATS_URL", &["nats-server"], say)?;
            }
            let port = free_after_install(port).await?;
            let dir = dev_dir.join("nats");
            say(&format!(
                "NATS: nothing answered at NATS_URL; starting nats-server with JetStream on 127.0.0.1:{port} (data in {})",
                dir.display()
            ));
            let nats = PrivateNats::start_at(dir, port, false).await?;
            *nats_url = with_port(nats_url, port)?;
            Some(nats)
        }
        _ => None,
    };
    Ok(LocalInfra {
        _postgres: postgres,
        _nats: nats,
    })
}

/// The port of a URL on this machine (loopback or `localhost`); `None` for another host, which
/// is left alone.
fn local_port(url: &str, default: u16) -> anyhow::Result<Option<u16>> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let local = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"));
    Ok(local.then(|| parsed.port().unwrap_or(default)))
}

fn with_port(url: &str, port: u16) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url)?;
    parsed
        .set_port(Some(port))
        .map_err(|_| anyhow::anyhow!("cannot set the port of {url}"))?;
    Ok(parsed.to_string())
}

async fn answers(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)))
}

/// The configured port, unless a server started there meanwhile (a package's own cluster,
/// which is left alone): then a free one.
async fn free_after_install(port: u16) -> anyhow::Result<u16> {
    if answers(port).await {
        crate::serve::free_port()
    } else {
        Ok(port)
    }
}

/// Installs Debian packages when this process may (root, apt-get present); else the one line
/// that says what to do (`setting`: what else would do, or what needs it).
pub fn install(what: &str, setting: &str, packages: &[&str], say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let apt = std::path::Path::new("/usr/bin/apt-get").exists();
    anyhow::ensure!(
        root && apt,
        "{what} is not installed ({setting}): install it with sudo apt-get install {}",
        packages.join(" ")
    );
    say(&format!(
        "{what} is not installed: apt-get install {}",
        packages.join(" ")
    ));
    let quiet = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
    };
    let updated = quiet(&["update", "-qq"]).is_ok_and(|s| s.success());
    let mut args = vec!["install", "-y", "-qq"];
    args.extend_from_slice(packages);
    let installed = updated && quiet(&args).is_ok_and(|s| s.success());
    anyhow::ensure!(
        installed,
        "{what} is not installed ({setting}) and apt-get could not install it (no network?): install {}",
        packages.join(" ")
    );
    Ok(())
}
