//! `run_service` starts a service the way every binary does: Postgres, NATS, then the service.

use std::process::ExitCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_fails_exits_with_failure() {
    let db = sepay_testkit::TestDb::new().await;
    let (_bus, nats) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    let code = sepay_runtime::run_service("run-service-test", &db.config, &nats, |_db, _bus, _shutdown| async {
        anyhow::bail!("cannot listen")
    })
    .await;
    assert_eq!(code, ExitCode::FAILURE);
}
