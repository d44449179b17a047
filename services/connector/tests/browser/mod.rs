//! The admin's whole journey in headless Chromium (Debian's `chromium` and `chromium-driver`):
//! the login link and its sign-in page (a POST), "Connect SePay", Approve on the simulator's consent page, back on
//! `?sepay=connected` with the connection active, accounts and events; then the events list, a
//! filter, an event's page, its replay and a wallet's statement, with every page's layout checked
//! at 1280 and 390 px. Screenshots (and a failure's) go under `target/browser-screenshots/`.

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

/// Follows the link whose text is `text`.
async fn click_link(browser: &Client, text: &str) -> Result<(), String> {
    let link = browser
        .find(Locator::LinkText(text))
        .await
        .map_err(|e| format!("link {text:?}: {e}"))?;
    link.click().await.map_err(|e| format!("click {text:?}: {e}"))
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
    click_link(browser, "Events").await?;
    let events = text_of(browser, "events").await?;
    if !events.contains("wallet_not_linked") {
        return Err(format!("events table: {events}"));
    }
    save_screenshot(browser, "connector-events").await;
    Ok(())
}

/// A headless Chromium session on `driver`, with a profile of its own (removed by [`finish`]).
async fn open_browser(driver: &Driver) -> (Client, PathBuf) {
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
        "--hide-scrollbars",
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
    (browser, profile)
}

/// Closes the browser; a failed journey panics with a screenshot of where it stopped.
async fn finish(browser: Client, profile: PathBuf, outcome: Result<(), String>) {
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
    let (browser, profile) = open_browser(&driver).await;
    let outcome = journey(&app, &browser, account).await;
    finish(browser, profile, outcome).await;
    let connection = sepay_store::connections::get(&app.db, app.ws).await.unwrap().unwrap();
    assert_eq!(connection.status, "active");
    println!("browser journey took {:?}", started.elapsed());
}

/// What an admin does with the events and the money: the list, a filter, an event's page, its
/// replay, the wallet's statement; every page checked for layout at 1280 px (no table wider than
/// its container) and 390 px (no page scrolls sideways), and photographed at both widths.
async fn events_journey(app: &App, browser: &Client, wallet: uuid::Uuid) -> Result<(), String> {
    let link = sepay_connector::login_url(&app.url, &session("alice"), app.ws);
    browser.goto(&link).await.map_err(|e| e.to_string())?;
    click(browser, "sign-in").await?;
    url_containing(browser, &format!("/ws/{}/integrations", app.ws)).await?;
    browser
        .goto(&format!("{}/ws/{}/events", app.url, app.ws))
        .await
        .map_err(|e| e.to_string())?;
    let count = text_of(browser, "event-count").await?;
    if !count.starts_with("120 events") {
        return Err(format!("the list says {count:?}"));
    }
    // filter: failed events whose content holds "ORDER 11"
    let status = browser
        .find(Locator::Css("select[name=status]"))
        .await
        .map_err(|e| e.to_string())?;
    status.select_by_value("failed").await.map_err(|e| e.to_string())?;
    let text = browser
        .find(Locator::Css("input[name=q]"))
        .await
        .map_err(|e| e.to_string())?;
    text.send_keys("ORDER 11").await.map_err(|e| e.to_string())?;
    click(browser, "apply-filters").await?;
    url_containing(browser, "status=failed").await?;
    // 111, 114, 117 (and 11 itself is not a multiple of 3)
    let count = text_of(browser, "event-count").await?;
    if !count.starts_with("3 events") {
        return Err(format!("the filter found {count:?}"));
    }
    // the event's page, from its link
    click_link(browser, "117").await?;
    url_containing(browser, "/events/117").await?;
    if text_of(browser, "event-status").await? != "failed" {
        return Err("event 117 is not shown failed".into());
    }
    let payload = text_of(browser, "payload").await?;
    if !payload.contains("\"content\": \"ORDER 117\"") {
        return Err(format!("the payload shown: {payload}"));
    }
    click(browser, "replay").await?;
    url_containing(browser, "done=replayed_one").await?;
    let flash = text_of(browser, "flash").await?;
    if !flash.contains("re-driven") || text_of(browser, "event-status").await? != "received" {
        return Err(format!("after the replay: {flash:?}"));
    }
    // the money: Wallets, then the wallet's statement
    click_link(browser, "Wallets").await?;
    click_link(browser, "VCB 8888").await?;
    url_containing(browser, &format!("/wallets/{wallet}")).await?;
    let statement = text_of(browser, "statement").await?;
    if !statement.contains("2,277,000 VND") || !statement.contains("2,200,000 VND") {
        return Err(format!("the statement: {statement}"));
    }
    // layout, page by page, at both widths
    let pages = [
        ("overview", format!("/ws/{}/overview", app.ws)),
        ("integration", format!("/ws/{}/integrations", app.ws)),
        ("events", format!("/ws/{}/events", app.ws)),
        ("event", format!("/ws/{}/events/118", app.ws)),
        ("statement", format!("/ws/{}/wallets/{wallet}", app.ws)),
        ("rules", format!("/ws/{}/rules", app.ws)),
        ("striga", format!("/ws/{}/striga", app.ws)),
    ];
    for (width, height) in [(1280, 1000), (390, 844)] {
        browser
            .set_window_size(width, height)
            .await
            .map_err(|e| e.to_string())?;
        for (name, path) in &pages {
            browser
                .goto(&format!("{}{path}", app.url))
                .await
                .map_err(|e| e.to_string())?;
            let problems = browser
                .execute(
                    "const tooWide = [...document.querySelectorAll('table')]
                       .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
                       .map(t => t.id || 'a table');
                     const sideways = document.documentElement.scrollWidth > window.innerWidth + 1;
                     return {tooWide, sideways};",
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            let too_wide = problems["tooWide"].as_array().map_or(0, |a| a.len());
            if width >= 1280 && too_wide > 0 {
                return Err(format!(
                    "{name} at {width} px: tables wider than their container: {}",
                    problems["tooWide"]
                ));
            }
            if problems["sideways"] == json!(true) {
                return Err(format!("{name} at {width} px scrolls sideways"));
            }
            save_screenshot(browser, &format!("{name}-{width}")).await;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_filters_replays_and_reads_the_statement_in_a_real_browser() {
    let driver = Driver::start();
    let app = App::start(fast_sim()).await;
    let wallet = workspaces::create_wallet(&app.db, app.ws, "VCB 8888", "VND")
        .await
        .unwrap();
    seed_events(&app.db, app.ws, 120).await;
    for (n, amount) in [(1, "2277000"), (2, "-77000")] {
        sqlx::query(
            "insert into wallet_transactions (ws_id, wallet_id, amount, description, taken_at, source, external_ref)
             values ($1, $2, $3::numeric, 'DH100' || $4::text, now() - make_interval(mins => 10 - $4), 'sepay', 'sepay:tx' || $4::text)",
        )
        .bind(app.ws)
        .bind(wallet.id)
        .bind(amount)
        .bind(n)
        .execute(&app.db)
        .await
        .unwrap();
    }
    app.bus.ensure_events_stream().await.unwrap();
    let (browser, profile) = open_browser(&driver).await;
    let outcome = events_journey(&app, &browser, wallet.id).await;
    finish(browser, profile, outcome).await;
}
