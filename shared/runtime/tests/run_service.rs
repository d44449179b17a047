//! `run_service` starts a service the way every binary does: Postgres, NATS, then the service.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// The service must not be polled by the caller's own future: in a binary that is
/// `#[tokio::main]`'s future, driven by the main thread outside the worker pool, where the
/// processor's consumer loop once ran (one thread for all of it, a cross-thread wake per message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_a_worker_thread_not_in_the_callers_future() {
    let db = sepay_testkit::TestDb::new().await;
    let (_bus, nats) = sepay_testkit::test_bus(&sepay_testkit::nats_url()).await;
    let caller = std::thread::current().id();
    let ran_on = Arc::new(Mutex::new(None));
    let code = sepay_runtime::run_service("run-service-test", &db.config, &nats, {
        let ran_on = ran_on.clone();
        move |_db, _bus, _shutdown| async move {
            *ran_on.lock().unwrap() = Some(std::thread::current().id());
            Ok(())
        }
    })
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    let ran_on = ran_on.lock().unwrap().expect("the service ran");
    assert_ne!(ran_on, caller, "the service ran inside the caller's future");
}

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
