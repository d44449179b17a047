//! The relay's work list (`sepay_open_events`) against a real Postgres: every statement that
//! opens an event puts it there, the relay's queries read it, and the prune removes exactly the
//! rows of events no longer open. A closed row takes no publication mark. And the event row's own
//! updates stay HOT: no index covers a column they change.

use sepay_core::{DedupeKey, Delivery, EventSource, FailureReason, Provider, RetryPolicy};
use sepay_store::events::{self, EventBody, EventRef, NewEvent, Recorded};
use sepay_testkit::{Seeded, TestDb};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

fn key_of(payload: &Value) -> DedupeKey {
    let Delivery::Object(object) = Delivery::from_value(payload.clone()) else {
        panic!("an object")
    };
    DedupeKey::for_payload(&object)
}

fn body(id: i64) -> Value {
    json!({"id": id, "transferAmount": 1000, "accountNumber": "0071000888888"})
}

/// The work list: (event id, attempt), by id.
async fn open_list(db: &PgPool) -> Vec<(i64, i32)> {
    sqlx::query_as("select event_id, attempts from sepay_open_events order by event_id")
        .fetch_all(db)
        .await
        .unwrap()
}

fn ids(events: &[EventRef]) -> Vec<i64> {
    let mut ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn the_work_list_holds_exactly_the_open_events() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let policy = RetryPolicy::default();
    let bodies: Vec<Value> = (1..=5).map(body).collect();
    let keys: Vec<DedupeKey> = bodies.iter().map(key_of).collect();
    let raw_key = DedupeKey::for_raw_body(b"not json");
    let new = |i: usize, source: EventSource| NewEvent {
        ws_id: seed.ws_id,
        provider: Provider::Sepay,
        endpoint_id: Some(seed.endpoint_id),
        source,
        sepay_transaction_id: None,
        dedupe_key: &keys[i],
        body: EventBody::Json(&bodies[i]),
    };

    // opened by the group commit (not the body that is no object: it is stored failed), one
    // delivery alone, and reconciliation
    let batch = [
        new(0, EventSource::Webhook),
        new(1, EventSource::Webhook),
        NewEvent {
            dedupe_key: &raw_key,
            body: EventBody::Invalid("not json"),
            ..new(0, EventSource::Webhook)
        },
    ];
    let rows = events::insert_many(&db.pool, &batch, &[]).await.unwrap();
    let (e1, e2) = (rows[0].unwrap(), rows[1].unwrap());
    let Recorded::New(e3) = events::record_delivery(&db.pool, &new(2, EventSource::Webhook), &policy)
        .await
        .unwrap()
    else {
        panic!("a new event")
    };
    let e4 = events::insert_missing(&db.pool, &new(3, EventSource::Reconciliation))
        .await
        .unwrap()
        .unwrap();
    let e5 = events::insert_many(&db.pool, &[new(4, EventSource::Webhook)], &[])
        .await
        .unwrap()[0]
        .unwrap();
    let all = [e1, e2, e3, e4, e5];
    assert_eq!(
        open_list(&db.pool).await,
        all.iter().map(|e| (e.id, 1)).collect::<Vec<_>>()
    );
    let unpublished = events::unpublished(&db.pool, Duration::ZERO, 100).await.unwrap();
    assert_eq!(ids(&unpublished), ids(&all));
    assert_eq!(events::relay_backlog(&db.pool, 100).await.unwrap(), 5);
    assert_eq!(
        events::relay_backlog(&db.pool, 3).await.unwrap(),
        3,
        "counted up to its cap"
    );

    // published: no longer the relay's to publish, still open
    events::mark_published(&db.pool, &e5).await.unwrap();
    assert_eq!(events::relay_backlog(&db.pool, 100).await.unwrap(), 4);
    assert!(
        !events::unpublished(&db.pool, Duration::ZERO, 100)
            .await
            .unwrap()
            .contains(&e5)
    );

    // closed: booked, failed; the prune removes those, and nothing else
    assert!(events::mark_processed_without_booking(&db.pool, e1.id).await.unwrap());
    events::mark_failed(&db.pool, e2.id, FailureReason::WalletNotLinked, "no wallet")
        .await
        .unwrap();
    assert_eq!(
        open_list(&db.pool).await.len(),
        5,
        "the booking leaves the list to the relay"
    );
    // closing notes the publication (the processor had it); a mark arriving later adds no version
    let published: Vec<bool> =
        sqlx::query_scalar("select published_at is not null from sepay_webhook_events where id = any($1) order by id")
            .bind([e1.id, e2.id])
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(published, [true, true]);
    assert_eq!(events::mark_published_many(&db.pool, &[(e1.id, 1)]).await.unwrap(), 0);
    assert_eq!(events::prune_open(&db.pool, 0, 1000).await.unwrap().removed, 2);
    assert_eq!(open_list(&db.pool).await, vec![(e3.id, 1), (e4.id, 1), (e5.id, 1)]);
    assert_eq!(events::relay_backlog(&db.pool, 100).await.unwrap(), 2);

    // a replay reopens the failed one: on the list again, with its new attempt
    let reopened = events::reopen_failed(&db.pool, Some(seed.ws_id), &[e2.id])
        .await
        .unwrap();
    assert_eq!(reopened.len(), 1);
    assert!(open_list(&db.pool).await.contains(&(e2.id, 2)));
    assert_eq!(
        events::prune_open(&db.pool, 0, 1000).await.unwrap().removed,
        0,
        "a reopened event is open"
    );

    // a list row newer than the event row the prune reads (a reopen it races) is kept
    sqlx::query("update sepay_open_events set attempts = attempts + 1 where event_id = $1")
        .bind(e3.id)
        .execute(&db.pool)
        .await
        .unwrap();
    events::mark_failed(&db.pool, e3.id, FailureReason::WalletNotLinked, "no wallet")
        .await
        .unwrap();
    assert_eq!(events::prune_open(&db.pool, 0, 1000).await.unwrap().removed, 0);

    // a published event left unbooked past the stale TTL is found on the list and reopened
    sqlx::query("update sepay_open_events set opened_at = now() - interval '10 minutes' where event_id = $1")
        .bind(e5.id)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("update sepay_webhook_events set opened_at = now() - interval '10 minutes' where id = $1")
        .bind(e5.id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        events::reopen_stale(&db.pool, policy.stale_after, 100).await.unwrap(),
        1
    );
    assert!(open_list(&db.pool).await.contains(&(e5.id, 2)));
    assert!(
        events::unpublished(&db.pool, Duration::ZERO, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.id == e5.id)
    );

    // an event deleted (its workspace removed) leaves no row behind
    sqlx::query("delete from sepay_webhook_events where id = $1")
        .bind(e4.id)
        .execute(&db.pool)
        .await
        .unwrap();
    events::prune_open(&db.pool, 0, 1000).await.unwrap();
    assert!(!open_list(&db.pool).await.iter().any(|(id, _)| *id == e4.id));
}

#[tokio::test]
async fn the_prune_reads_a_window_of_the_list_a_pass_and_goes_round_it() {
    let db = TestDb::new().await;
    let seed = Seeded::new(&db.pool).await;
    let bodies: Vec<Value> = (1..=5).map(body).collect();
    let keys: Vec<DedupeKey> = bodies.iter().map(key_of).collect();
    let batch: Vec<NewEvent> = (0..5)
        .map(|i| NewEvent {
            ws_id: seed.ws_id,
            provider: Provider::Sepay,
            endpoint_id: Some(seed.endpoint_id),
            source: EventSource::Webhook,
            sepay_transaction_id: None,
            dedupe_key: &keys[i],
            body: EventBody::Json(&bodies[i]),
        })
        .collect();
    let mut rows: Vec<EventRef> = events::insert_many(&db.pool, &batch, &[])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    rows.sort_unstable_by_key(|e| e.id);
    // all closed but the second, which stays open
    for (i, event) in rows.iter().enumerate() {
        if i != 1 {
            assert!(
                events::mark_processed_without_booking(&db.pool, event.id)
                    .await
                    .unwrap()
            );
        }
    }
    let id = |i: usize| rows[i].id;

    // two rows a pass: the open one is read and kept; the last pass reads less than its window
    // and sends the next one back to the beginning
    let first = events::prune_open(&db.pool, 0, 2).await.unwrap();
    assert_eq!(
        first,
        events::PrunePass {
            removed: 1,
            next_after: id(1)
        }
    );
    let second = events::prune_open(&db.pool, first.next_after, 2).await.unwrap();
    assert_eq!(
        second,
        events::PrunePass {
            removed: 2,
            next_after: id(3)
        }
    );
    let third = events::prune_open(&db.pool, second.next_after, 2).await.unwrap();
    assert_eq!(
        third,
        events::PrunePass {
            removed: 1,
            next_after: 0
        }
    );
    assert_eq!(open_list(&db.pool).await, vec![(id(1), 1)]);
    // round again: only the open row is left, and it stays
    let again = events::prune_open(&db.pool, third.next_after, 2).await.unwrap();
    assert_eq!(
        again,
        events::PrunePass {
            removed: 0,
            next_after: 0
        }
    );
    assert_eq!(open_list(&db.pool).await, vec![(id(1), 1)]);
}

#[tokio::test]
async fn no_index_covers_a_column_the_event_rows_updates_change() {
    let db = TestDb::new().await;
    let indexed: Vec<String> = sqlx::query_scalar(
        "select distinct a.attname::text
           from pg_index i
           join pg_attribute a on a.attrelid = i.indrelid
          where i.indrelid = 'sepay_webhook_events'::regclass
            and (a.attnum = any(i.indkey)
                 or pg_get_expr(i.indpred, i.indrelid) like '%' || a.attname || '%'
                 or pg_get_expr(i.indexprs, i.indrelid) like '%' || a.attname || '%')
            and a.attnum > 0
          order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        indexed,
        ["dedupe_key", "id", "ws_id"],
        "a new index here makes marks and bookings non-HOT"
    );
    let options: Vec<String> =
        sqlx::query_scalar("select unnest(reloptions) from pg_class where oid = 'sepay_webhook_events'::regclass")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(options.iter().any(|o| o.starts_with("fillfactor=")), "{options:?}");
}

/// Migration 16 on a database that already holds events: the open ones are put on the work list,
/// the others are not.
#[tokio::test]
async fn an_upgrade_puts_the_events_already_open_on_the_work_list() {
    const BEFORE_THE_WORK_LIST: i64 = 20261201000015;
    let db = TestDb::migrated_to(BEFORE_THE_WORK_LIST).await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "with ws as (insert into workspaces (name) values ('upgraded') returning id)
         insert into sepay_webhook_events (ws_id, source, dedupe_key, payload, status)
         select ws.id, 'webhook', key, '{}', status
           from ws, (values ('a', 'received'), ('b', 'processed'), ('c', 'received'), ('d', 'failed')) as v(key, status)
         returning id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    sepay_store::migrate(&db.pool).await.unwrap();
    assert_eq!(open_list(&db.pool).await, vec![(ids[0], 1), (ids[2], 1)]);
}
