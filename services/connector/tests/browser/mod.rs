//! The admin's whole journey in headless Chromium (Debian's `chromium` and `chromium-driver`):
//! the login link and its sign-in page (a POST), "Connect SePay", Approve on the simulator's consent page, back on
//! `?sepay=connected` with the connection active, accounts and events. A failure saves a
//! screenshot under `target/browser-screenshots/`.

use super::{App, fast_sim, seed_events, session};
use fantoccini::{Client, ClientBuilder, Locator};
use sepay_sim::SimConfig;
use sepay_store::workspaces;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped with the test.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: the browser test needs Debian's chromium and chromium-driver \
                 (`apt-get install -y chromium chromium-driver`; `sepay-dev test` installs them as root)"
            );
        }
        let port = sepay_testkit::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not open port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-screenshots")
}

async fn save_screenshot(browser: &Client, name: &str) -> Option<PathBuf> {
    let png = browser.screenshot().await.ok()?;
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).ok()?;
    Some(path)
}

async fn text_of(browser: &Client, id: &str) -> Result<String, String> {
    let element = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await
        .map_err(|e| format!("#{id}: {e}"))?;
    element.text().await.map_err(|e| format!("text of #{id}: {e}"))
}

async fn click(browser: &Client, id: &str) -> Result<(), String> {
    let element = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await
        .map_err(|e| format!("#{id}: {e}"))?;
    element.click().await.map_err(|e| format!("click #{id}: {e}"))
}

/// Waits until the browser's URL contains `part`.
async fn url_containing(browser: &Client, part: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = browser.current_url().await.map_err(|e| e.to_string())?.to_string();
        if url.contains(part) {
            return Ok(url);
        }
        if Instant::now() > deadline {
            return Err(format!("the browser is at {url}, expected {part}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn journey(app: &App, browser: &Client, account: &str) -> Result<(), String> {
    let link = sepay_connector::login_url(&app.url, &session("alice"), app.ws);
    browser.goto(&link).await.map_err(|e| e.to_string())?;
    // the link only shows the sign-in form; its button signs in (a same-origin POST)
    let user = text_of(browser, "sign-in-user").await?;
    if user != "alice" {
        return Err(format!("the sign-in page names {user:?}"));
    }
    click(browser, "sign-in").await?;
    url_containing(browser, &format!("/ws/{}/integrations", app.ws)).await?;
    let status = text_of(browser, "connection-status").await?;
    if status != "not connected" {
        return Err(format!("before connecting the status is {status:?}"));
    }
    click(browser, "connect").await?;
    // the simulator's consent page
    url_containing(browser, &app.sepay.sepay_base_url).await?;
    click(browser, "approve").await?;
    let landed = url_containing(browser, "sepay=connected").await?;
    if !landed.starts_with(&format!("{}/ws/{}/integrations", app.url, app.ws)) {
        return Err(format!("landed on {landed}"));
    }
    let status = text_of(browser, "connection-status").await?;
    if status != "active" {
        return Err(format!("after connecting the status is {status:?}"));
    }
    let flash = text_of(browser, "flash").await?;
    if !flash.contains("connected") {
        return Err(format!("flash {flash:?}"));
    }
    let accounts = text_of(browser, "accounts").await?;
    if !accounts.contains(account) {
        return Err(format!("accounts table without {account}: {accounts}"));
    }
    save_screenshot(browser, "connector-connected").await;
    browser
        .find(Locator::LinkText("Events"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let events = text_of(browser, "events").await?;
    if !events.contains("wallet_not_linked") {
        return Err(format!("events table: {events}"));
    }
    save_screenshot(browser, "connector-events").await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_sepay_in_a_real_browser() {
    let started = Instant::now();
    let driver = Driver::start();
    let app = App::start(SimConfig {
        sim_auto_approve: false,
        ..fast_sim()
    })
    .await;
    let wallet = workspaces::create_wallet(&app.db, app.ws, "VCB 8888", "VND")
        .await
        .unwrap();
    let account = "0071000888888";
    workspaces::link_account(&app.db, app.ws, account, None, wallet.id)
        .await
        .unwrap();
    seed_events(&app.db, app.ws, 120).await;

    let profile = std::env::temp_dir().join(format!("sepay-chromium-{}", uuid::Uuid::new_v4().simple()));
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let capabilities = json!({"goog:chromeOptions": {"binary": CHROMIUM, "args": args}});
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("chromedriver refused a session: {e}"));

    let outcome = journey(&app, &browser, account).await;
    if let Err(problem) = &outcome {
        let shot = save_screenshot(&browser, "connector-failure").await;
        let _ = browser.close().await;
        let _ = std::fs::remove_dir_all(&profile);
        match shot {
            Some(path) => panic!("{problem}; screenshot saved to {}", path.display()),
            None => panic!("{problem}; no screenshot could be taken"),
        }
    }
    let _ = browser.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    let connection = sepay_store::connections::get(&app.db, app.ws).await.unwrap().unwrap();
    assert_eq!(connection.status, "active");
    println!("browser journey took {:?}", started.elapsed());
}
