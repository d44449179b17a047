//! What `sepay-dev` keeps on this machine (`SEPAY_DEV_DIR`), and how the other commands find a
//! running `sepay-dev up` there: `up` writes `up.json` with the addresses it settled on, and
//! `sepayctl admin-token`, `endpoint create` and `sepay-dev demo` use them unless told otherwise.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const RUNNING_UP_FILE: &str = "up.json";

/// `configured` (`SEPAY_DEV_DIR`), else `sepay-dev/` in the target directory of this binary
/// (`target/debug/sepayctl` → `target/sepay-dev`), which every binary of one checkout shares.
pub fn dev_dir(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = configured {
        return Ok(dir.to_owned());
    }
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let target = exe
        .parent()
        .and_then(|dir| dir.parent())
        .context("this binary is not inside a target directory: set SEPAY_DEV_DIR")?;
    Ok(target.join("sepay-dev"))
}

/// Where a running `sepay-dev up` listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningUp {
    pub pid: u32,
    /// What webhook URLs are built on (`PUBLIC_BASE_URL`, or the ingress it bound).
    pub public_base_url: String,
    /// The connector's origin, for login links.
    pub connector_url: String,
    /// Its simulator, unless run with `--no-sim`.
    pub sim_url: Option<String>,
}

impl RunningUp {
    /// Writes `up.json` in `dir`; the file is removed when the returned guard is dropped.
    pub fn announce(&self, dir: &Path) -> anyhow::Result<Announcement> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(RUNNING_UP_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Announcement { path, pid: self.pid })
    }

    /// The `up` announced in `dir`, if its process still runs (a killed `up` leaves its file).
    pub fn find(dir: &Path) -> Option<RunningUp> {
        let text = std::fs::read(dir.join(RUNNING_UP_FILE)).ok()?;
        let running: RunningUp = serde_json::from_slice(&text).ok()?;
        process_is_sepay_dev(running.pid).then_some(running)
    }
}

/// Removes `up.json` when dropped, unless another `up` has written it since.
pub struct Announcement {
    path: PathBuf,
    pid: u32,
}

impl Drop for Announcement {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path)
            .ok()
            .and_then(|text| serde_json::from_slice::<RunningUp>(&text).ok())
            .is_some_and(|running| running.pid == self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `pid` is alive and is `sepay-dev` (not another process that reused the id).
fn process_is_sepay_dev(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim() == "sepay-dev")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: u32) -> RunningUp {
        RunningUp {
            pid,
            public_base_url: "http://127.0.0.1:41000".into(),
            connector_url: "http://127.0.0.1:41002".into(),
            sim_url: None,
        }
    }

    #[test]
    fn an_announcement_is_found_only_while_its_process_is_sepay_dev() {
        let dir = std::env::temp_dir().join(format!("sepay-dev-dir-test-{}", std::process::id()));
        // this test binary is not sepay-dev: its own pid does not count as a running `up`
        let announced = running(std::process::id()).announce(&dir).unwrap();
        assert!(dir.join(RUNNING_UP_FILE).exists());
        assert_eq!(RunningUp::find(&dir), None);
        drop(announced);
        assert!(!dir.join(RUNNING_UP_FILE).exists(), "removed when `up` ends");
        // another `up` wrote the file since: it is left alone
        let first = running(1).announce(&dir).unwrap();
        let _second = running(2).announce(&dir).unwrap();
        drop(first);
        assert!(dir.join(RUNNING_UP_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
