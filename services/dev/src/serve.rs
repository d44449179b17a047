//! `sepay-dev serve <service>` (hidden) runs one service alone, as its own binary would; and
//! [`ServiceProcess`], how the bench and the fault suite start one: a process of its own, so its
//! memory is its own and SIGKILL is a real crash.

use crate::Cli;
use anyhow::Context;
use sepay_ingress::IngressConfig;
use sepay_processor::ProcessorConfig;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum ServeCmd {
    Ingress(ServeIngress),
    Processor(ServeProcessor),
}

#[derive(clap::Args)]
pub struct ServeIngress {
    #[command(flatten)]
    config: IngressConfig,
    #[command(flatten)]
    http: sepay_runtime::HttpLimits,
}

#[derive(clap::Args)]
pub struct ServeProcessor {
    #[command(flatten)]
    config: ProcessorConfig,
    #[command(flatten)]
    http: sepay_runtime::HttpLimits,
}

pub async fn run(cli: &Cli, cmd: &ServeCmd) -> ExitCode {
    match cmd {
        ServeCmd::Ingress(args) => {
            let config = IngressConfig {
                http: args.http.clone(),
                dev_mode: cli.global.dev.dev_mode,
                ..args.config.clone()
            };
            sepay_runtime::run_service(
                "sepay-ingress",
                &cli.global.db.for_hot_path(),
                &cli.global.nats,
                |db, bus, shutdown| sepay_ingress::run(config, db, bus, shutdown),
            )
            .await
        }
        ServeCmd::Processor(args) => {
            let config = ProcessorConfig {
                http: args.http.clone(),
                ..args.config.clone()
            };
            sepay_runtime::run_service(
                "sepay-processor",
                &cli.global.db.for_hot_path(),
                &cli.global.nats,
                |db, bus, shutdown| {
                    let classifier = sepay_processor::default_classifier(&config, &db);
                    sepay_processor::run(config, db, bus, classifier, shutdown)
                },
            )
            .await
        }
    }
}

/// Peak resident memory so far (`VmHWM`) of process `pid` (`self`: this one), in KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free loopback port (a moment's race with other binders; the child reports a clash).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One service running as a child process of this one (`sepay-dev serve …`); killed on drop.
pub struct ServiceProcess {
    child: tokio::process::Child,
    pid: u32,
    /// Its admin listener: `/healthz`, `/readyz`, `/metrics`.
    pub health: String,
    stderr: std::path::PathBuf,
}

impl ServiceProcess {
    /// `serve_args`: the service and its flags; `env`: what it connects to (`DATABASE_URL`,
    /// `NATS_URL`, `BUS_PREFIX`, …). Returns once `/readyz` answers 200. No model is called
    /// unless `env` names one: `LLM_BASE_URL` is not inherited from this process.
    /// `health_port`: the port of its admin listener.
    pub async fn start(serve_args: &[String], health_port: u16, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let stderr = std::env::temp_dir().join(format!("sepay-dev-serve-{}-{health_port}.log", std::process::id()));
        let exe = std::env::current_exe()?;
        let child = tokio::process::Command::new(exe)
            .arg("serve")
            .env_remove("LLM_BASE_URL")
            .args(serve_args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a service process")?;
        let pid = child.id().context("the service process exited at once")?;
        let mut service = Self {
            child,
            pid,
            health: format!("http://127.0.0.1:{health_port}"),
            stderr,
        };
        service.wait_ready(Duration::from_secs(30)).await?;
        Ok(service)
    }

    /// `sepay-dev serve processor` on a free port for its health server.
    pub async fn processor(env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let args = [
            "processor".to_owned(),
            "--processor-addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        Self::start(&args, port, env).await.context("cannot start a processor")
    }

    /// `sepay-dev serve ingress` with its webhook routes on `port` (development mode: the
    /// bench's and fault suite's endpoints are SePay's, no sealed keys involved).
    pub async fn ingress(port: u16, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let admin_port = free_port()?;
        let args = [
            "ingress".to_owned(),
            "--dev-mode".into(),
            "--ingress-addr".into(),
            format!("127.0.0.1:{port}"),
            "--ingress-admin-addr".into(),
            format!("127.0.0.1:{admin_port}"),
        ];
        Self::start(&args, admin_port, env)
            .await
            .context("cannot start the ingress")
    }

    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        loop {
            let ready = http
                .get(format!("{}/readyz", self.health))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("service process exited ({status}): {}", self.log_tail());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "service process not ready within {limit:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(&self.pid.to_string())
    }

    /// SIGKILL: no drain, no ack, no goodbye to Postgres or NATS.
    pub async fn sigkill(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait (the service drains), SIGKILL after `limit`.
    pub async fn stop(mut self, limit: Duration) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(limit, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stderr);
    }
}
