//! Histograms keep raw samples until the recorder's upkeep folds them into buckets. With
//! nothing scraping `/metrics`, the upkeep thread must do it, or every request grows memory.
//! (nextest runs each test in a process of its own, so this process's RSS is this test's.)

use sepay_telemetry::metrics::{self, histogram};
use std::time::Duration;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn recorded_samples_do_not_pile_up_when_nothing_scrapes() {
    metrics::handle();
    histogram!("upkeep_probe_seconds", "status" => "401").record(0.001);
    let before = rss_kib();
    // 5 million samples (40 MB held raw) at 500 thousand a second, never rendered
    for _ in 0..100 {
        for i in 0..50_000u32 {
            histogram!("upkeep_probe_seconds", "status" => "401").record(f64::from(i % 100) / 1000.0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(metrics::UPKEEP_INTERVAL * 2);
    let grown_kib = rss_kib().saturating_sub(before);
    assert!(
        grown_kib < 16 * 1024,
        "RSS grew by {grown_kib} KiB with nothing scraping"
    );
    // the samples were counted, not dropped
    let text = metrics::render();
    assert!(
        text.contains("upkeep_probe_seconds_count{status=\"401\"} 5000001"),
        "{}",
        text.lines()
            .filter(|l| l.contains("upkeep_probe_seconds_count"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
