//! The parts a fault scenario breaks: a TCP path that can be cut, and a nats-server and a
//! Postgres cluster of the run's own that can be stopped and started again.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A TCP path that can be cut (open connections dropped, new ones refused) and restored.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Default::default();
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut open = connections.lock().unwrap_or_else(|p| p.into_inner());
                    open.retain(|t| !t.is_finished());
                    open.push(task);
                }
            }
        });
        Ok(Self {
            port,
            up,
            connections,
            accept,
        })
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A nats-server of this run's own (JetStream with a store directory, so streams and the
/// durable consumer survive a restart).
pub struct PrivateNats {
    port: u16,
    store: std::path::PathBuf,
    child: Option<std::process::Child>,
    /// Removed when dropped (a fault scenario's); kept otherwise (`up`'s, under target/).
    temporary: bool,
}

impl PrivateNats {
    /// On a free port, its store in a temporary directory.
    pub async fn start() -> anyhow::Result<Self> {
        let store = std::env::temp_dir().join(format!("sepay-faults-nats-{}", Uuid::new_v4().simple()));
        Self::start_at(store, crate::serve::free_port()?, true).await
    }

    /// On `port`, its JetStream store in `store` (created if missing).
    pub async fn start_at(store: PathBuf, port: u16, temporary: bool) -> anyhow::Result<Self> {
        let mut nats = Self {
            port,
            store,
            child: None,
            temporary,
        };
        nats.resume().await?;
        Ok(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let binary = nats_server_bin();
        let child = std::process::Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {binary} (set NATS_SERVER_BIN)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// SIGTERM (a restart, not a crash), SIGKILL if it has not exited within 5 s.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.store);
        }
    }
}

/// A Postgres cluster of this run's own (initdb in a temporary directory, its own port), so
/// that it can really be crashed and restarted without touching the machine's server.
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Postgres refuses to run as root: then every command runs as the `postgres` user.
    run_as_postgres: bool,
    /// Removed when dropped (a fault scenario's); kept otherwise (`up`'s, under target/).
    temporary: bool,
}

impl PrivatePostgres {
    /// On a free port, its cluster in a temporary directory.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("sepay-faults-pg-{}", Uuid::new_v4().simple()));
        Self::start_at(dir, crate::serve::free_port()?, true).await
    }

    /// On `port`, its cluster in `dir` (made by initdb the first time, trust authentication for
    /// the `postgres` role).
    pub async fn start_at(dir: PathBuf, port: u16, temporary: bool) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir().context("no /usr/lib/postgresql/*/bin (set PG_BIN_DIR)")?;
        std::fs::create_dir_all(&dir)?;
        let run_as_postgres = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0;
        if run_as_postgres {
            let mut chown = std::process::Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir);
            run(chown).await?;
        }
        let pg = Self {
            port,
            dir,
            bin,
            run_as_postgres,
            temporary,
        };
        let data = pg.data_dir();
        if !Path::new(&data).join("PG_VERSION").exists() {
            pg.command("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D", &data])
                .await?;
        }
        pg.resume().await?;
        Ok(pg)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub async fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.command(
            "pg_ctl",
            &["-D", &self.data_dir(), "-l", &log, "-o", &options, "-w", "start"],
        )
        .await
    }

    /// `pg_ctl stop -m immediate`: the server quits without a checkpoint, as in a crash; the
    /// next start replays the WAL.
    pub async fn crash(&self) -> anyhow::Result<()> {
        self.command("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
            .await
    }

    async fn command(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        run(self.std_command(tool, args)).await
    }

    fn std_command(&self, tool: &str, args: &[&str]) -> std::process::Command {
        let program = self.bin.join(tool);
        let mut command = if self.run_as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        command.args(args);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        // a kept cluster is stopped cleanly (a checkpoint), a temporary one at once
        let mode = if self.temporary { "immediate" } else { "fast" };
        let _ = self
            .std_command("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"])
            .output();
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `PG_BIN_DIR`, else the newest installed `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    match std::env::var_os("PG_BIN_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => newest_postgres_bin(),
    }
}

/// `NATS_SERVER_BIN`, else Debian's `/usr/sbin/nats-server`.
pub fn nats_server_bin() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "/usr/sbin/nats-server".into())
}

fn newest_postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Runs a command to its end off the async threads; its output is the error when it fails.
async fn run(mut command: std::process::Command) -> anyhow::Result<()> {
    let described = format!("{command:?}");
    let out = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(
        out.status.success(),
        "{described} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
