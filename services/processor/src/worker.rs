use crate::classify::{Classifier, ClassifyInput, FALLBACK_DECIDER, FALLBACK_EXPENSE, FALLBACK_INCOME};
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use sepay_bus::{Bus, ConsumerSettings, EventReceived, Message};
use sepay_core::balance::BalancePoint;
use sepay_core::lifecycle::{processing_backoff, processing_retry};
use sepay_core::striga::{self, BalanceCheck, StrigaEffect, StrigaEvent};
use sepay_core::{
    DedupeKey, Delivery, EventStatus, FailureReason, NormalizedTransaction, PayloadObject, Provider, SEPAY_CURRENCY,
};
use sepay_runtime::group_commit::{GroupCommit, Limits, Stopped};
use sepay_store::ledger::{self, Booked, Booking, CategoryChoice, FeeRow};
use sepay_store::{PgPool, StoreError, StoreResult, events};
use sepay_telemetry::metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Worker {
    pub db: PgPool,
    /// Reads the events of messages in flight together (one query per batch).
    pub loader: Loader,
    /// Books the events of messages in flight together (one statement and commit per batch).
    pub booker: Booker,
    /// Wallet resolution, in memory until a change is announced.
    pub settings: Arc<crate::settings::BookingSettings>,
    pub classifier: Arc<dyn Classifier>,
    pub classify_budget: Duration,
    pub max_deliver: i64,
}

/// What to tell JetStream about a message.
#[derive(Debug, PartialEq)]
enum Settle {
    Ack,
    Retry(Duration),
    /// A message that can never be processed (undecodable, or its row is gone).
    Term,
}

pub type Loader = GroupCommit<i64, StoreResult<Option<events::Event>>>;
pub type Booker = GroupCommit<Booking, StoreResult<Booked>>;

/// The group commits of a worker: events read, and booked, a batch at a time. A batch that fails
/// is done again one by one, so an event Postgres refuses fails only itself.
pub fn start_batches(db: &PgPool, limits: Limits) -> (Loader, Booker) {
    let (loader, _) = GroupCommit::start(limits, {
        let db = db.clone();
        move |ids: Vec<i64>| {
            let db = db.clone();
            async move {
                metrics::histogram!("sepay_processor_batch_size", "step" => "read").record(ids.len() as f64);
                match events::get_many(&db, &ids).await {
                    Ok(found) => {
                        let mut found: std::collections::HashMap<i64, events::Event> =
                            found.into_iter().map(|e| (e.id, e)).collect();
                        ids.iter().map(|id| Ok(found.remove(id))).collect()
                    }
                    Err(err) if ids.len() == 1 => vec![Err(err)],
                    Err(err) => {
                        tracing::warn!(error = %err, events = ids.len(), "batch not read; reading one by one");
                        let db = &db;
                        futures::future::join_all(ids.iter().map(|&id| async move {
                            match events::get(db, id).await {
                                Err(StoreError::NotFound(_)) => Ok(None),
                                found => found.map(Some),
                            }
                        }))
                        .await
                    }
                }
            }
        }
    });
    let (booker, _) = GroupCommit::start(limits, {
        let db = db.clone();
        move |bookings: Vec<Booking>| {
            let db = db.clone();
            async move {
                metrics::histogram!("sepay_processor_batch_size", "step" => "book").record(bookings.len() as f64);
                match ledger::book_many(&db, &bookings).await {
                    Ok(booked) => booked.into_iter().map(Ok).collect(),
                    Err(err) if bookings.len() == 1 => vec![Err(err)],
                    Err(err) => {
                        tracing::warn!(error = %err, events = bookings.len(), "batch not booked; booking one by one");
                        let mut outcomes = Vec::with_capacity(bookings.len());
                        for booking in &bookings {
                            outcomes.push(ledger::book(&db, booking).await);
                        }
                        outcomes
                    }
                }
            }
        }
    });
    (loader, booker)
}

pub async fn consume_loop(
    worker: Arc<Worker>,
    bus: Bus,
    settings: ConsumerSettings,
    concurrency: usize,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    while !shutdown.is_cancelled() {
        ready.store(false, Ordering::Relaxed);
        let messages = match bus.events_consumer(crate::CONSUMER, &settings).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let messages = match messages {
            Ok(m) => {
                ready.store(true, Ordering::Relaxed);
                m
            }
            Err(err) => {
                tracing::warn!(error = %err, "consumer not ready; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(concurrency, |item| {
                let worker = worker.clone();
                async move {
                    match item {
                        Ok(message) => worker.handle(message).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "consumer stream error");
                        }
                    }
                }
            })
            .await;
        // the stream ended (server restart, missed heartbeats) or shutdown: re-attach unless stopping
    }
    ready.store(false, Ordering::Relaxed);
    tracing::info!("sepay-processor stopped");
    Ok(())
}

/// Releases AI credit reservations whose worker died before committing or releasing them.
pub async fn sweep_reservations(db: PgPool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sepay_store::classification::release_expired(&db).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("sepay_ai_credits_swept_total").increment(n);
                tracing::warn!(released = n, "expired AI credit reservations released");
            }
            Err(err) => tracing::warn!(error = ?err, "reservation sweep failed"),
        }
    }
}

/// Publishes the consumer's lag and redeliveries as gauges every few seconds.
pub async fn report_consumer(bus: Bus, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(info) = bus.consumer_state(crate::CONSUMER).await {
            metrics::gauge!("sepay_consumer_pending").set(info.pending as f64);
            metrics::gauge!("sepay_consumer_ack_pending").set(info.ack_pending as f64);
            metrics::gauge!("sepay_consumer_redelivered").set(info.redelivered as f64);
        }
    }
}

impl Worker {
    async fn handle(&self, message: Message) {
        let started = std::time::Instant::now();
        let delivered = message.info().map(|i| i.delivered as u64).unwrap_or(1);
        if delivered > 1 {
            metrics::counter!("sepay_events_redelivered_total").increment(1);
        }
        let span = tracing::info_span!(
            "sepay.events.received process",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.type = "process",
            messaging.destination.name = %message.subject,
            event_id = tracing::field::Empty,
            delivered,
            outcome = tracing::field::Empty,
        );
        sepay_bus::continue_trace(&span, message.headers.as_ref());
        let settle = async {
            match serde_json::from_slice::<EventReceived>(&message.payload) {
                Ok(envelope) => {
                    tracing::Span::current().record("event_id", envelope.event_id);
                    self.process(&envelope, delivered).await
                }
                Err(err) => {
                    tracing::error!(error = %err, "undecodable message");
                    Settle::Term
                }
            }
        }
        .instrument(span.clone())
        .await;
        let result = match settle {
            // not awaited by the server: a lost ack only redelivers a booked event, acked again
            Settle::Ack => message.ack().await,
            Settle::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
            Settle::Term => message.ack_with(AckKind::Term).await,
        };
        if let Err(err) = result {
            // JetStream redelivers; processing is idempotent
            span.in_scope(|| tracing::warn!(error = %err, "ack not confirmed"));
        }
        metrics::histogram!("sepay_processing_seconds").record(started.elapsed().as_secs_f64());
    }

    async fn process(&self, envelope: &EventReceived, delivered: u64) -> Settle {
        match self.try_process(envelope).await {
            Ok(outcome) => {
                tracing::Span::current().record("outcome", outcome);
                metrics::counter!("sepay_events_settled_total", "outcome" => outcome).increment(1);
                tracing::info!(outcome, "event settled");
                Settle::Ack
            }
            Err(Failure::Gone) => Settle::Term,
            // the worker is stopping: another replica, or this one restarted, takes it
            Err(Failure::Stopping) => Settle::Retry(processing_backoff(delivered)),
            Err(Failure::Event(reason, detail)) => {
                tracing::Span::current().record("outcome", reason.as_str());
                metrics::counter!("sepay_events_failed_total", "reason" => reason.as_str()).increment(1);
                tracing::warn!(reason = reason.as_str(), detail = %detail, "event failed");
                if let Err(err) = events::mark_failed(&self.db, envelope.event_id, reason, &detail).await {
                    tracing::warn!(error = ?err, "could not record the failure");
                    return Settle::Retry(processing_backoff(delivered));
                }
                self.retry_or_ack(reason, delivered)
            }
            Err(Failure::Store(err)) => {
                metrics::counter!("sepay_events_failed_total", "reason" => FailureReason::ProcessingError.as_str())
                    .increment(1);
                tracing::warn!(error = ?err, "processing error");
                let detail = format!("{err}");
                let _ = events::mark_failed(&self.db, envelope.event_id, FailureReason::ProcessingError, &detail).await;
                Settle::Retry(processing_backoff(delivered))
            }
        }
    }

    /// The lifecycle's `processing_retry`, as a JetStream settlement.
    fn retry_or_ack(&self, reason: FailureReason, delivered: u64) -> Settle {
        processing_retry(reason, delivered, self.max_deliver).map_or(Settle::Ack, Settle::Retry)
    }

    async fn try_process(&self, envelope: &EventReceived) -> Result<&'static str, Failure> {
        let mut event = match self.loader.submit(envelope.event_id).await {
            Ok(Ok(Some(event))) => event,
            Ok(Ok(None)) => return Err(Failure::Gone),
            Ok(Err(err)) => return Err(Failure::Store(err)),
            Err(Stopped) => return Err(Failure::Stopping),
        };
        match EventStatus::parse(&event.status) {
            Some(status) if !status.is_open() => return Ok("already_processed"),
            Some(_) => {}
            None => return Err(Failure::Gone),
        }
        // moved out: nothing after this reads the row's payload
        let Some(payload) = event.payload.take() else {
            return Err(Failure::Event(
                FailureReason::InvalidPayload,
                "the body is not a JSON object".into(),
            ));
        };
        let payload = match Delivery::from_value(payload) {
            Delivery::Object(p) => p,
            Delivery::NotAnObject { .. } => {
                return Err(Failure::Event(
                    FailureReason::InvalidPayload,
                    "the payload is not a JSON object".into(),
                ));
            }
        };
        if event.provider == Provider::Striga {
            return self.process_striga(&event, &payload).await;
        }
        let tx = payload
            .normalize()
            .map_err(|e| Failure::Event(e.reason(), e.to_string()))?;
        let wallet_id = self.resolve_wallet(event.ws_id, event.endpoint_id, &tx).await?;
        // a webhook without `id` and its reconciled copy share this: booked once between them
        let identity = DedupeKey::identity(&payload).map(|key| key.as_str().to_owned());
        let refs = (event.dedupe_key.clone(), identity);
        self.book(&event, wallet_id, &tx, "sepay", refs, None).await
    }

    /// A Striga event: its payout progress and balance check are recorded first (idempotent and
    /// order-free, so a crash before the booking only repeats them), then its amount is booked,
    /// or, for a settlement, nothing.
    async fn process_striga(&self, event: &events::Event, payload: &PayloadObject) -> Result<&'static str, Failure> {
        let striga =
            StrigaEvent::from_object(payload.0.clone()).map_err(|e| Failure::Event(e.reason(), e.to_string()))?;
        if let Some((initiated, outcome_rank)) = striga.event_type.payout_progress() {
            sepay_store::striga::record_payout_progress(
                &self.db,
                event.ws_id,
                &striga.payout_ref(),
                initiated,
                outcome_rank,
            )
            .await?;
        }
        if let BalanceCheck::Mismatch { expected, actual } = striga.balance_check() {
            metrics::counter!("sepay_striga_balance_mismatches_total").increment(1);
            tracing::warn!(%expected, %actual, "Striga balances do not add up; booked as sent");
            sepay_store::striga::record_balance_mismatch(&self.db, event.id, event.ws_id, expected, actual).await?;
        }
        if striga.effect() == StrigaEffect::Settle {
            // the payout's debit is booked by its INITIATED event, whenever it comes
            let settled = events::mark_processed_without_booking(&self.db, event.id).await?;
            return Ok(if settled { "settled" } else { "already_processed" });
        }
        let (Some(tx), Some(external_ref)) = (striga.normalize(), striga.external_ref()) else {
            return Err(Failure::Event(
                FailureReason::InvalidAmount,
                "the amount cannot be booked".into(),
            ));
        };
        let refs = striga.wallet_refs();
        let counterpart = striga.counterpart_ref();
        let (wallet_id, currency) =
            sepay_store::striga::wallet_for(&self.db, event.ws_id, event.endpoint_id, &refs, counterpart.as_deref())
                .await?
                .ok_or_else(|| {
                    Failure::Event(
                        FailureReason::WalletNotLinked,
                        format!("no wallet linked to Striga account {}", refs.join(" or owner ")),
                    )
                })?;
        if currency != striga::CURRENCY {
            return Err(Failure::Event(
                FailureReason::WalletCurrencyMismatch,
                format!(
                    "Striga books {} but the linked wallet holds {currency}",
                    striga::CURRENCY
                ),
            ));
        }
        // a fee the balances show outside the debit is its own row, booked with the amount
        let fee_tx = striga.fee_transaction();
        let fee_ref = striga.fee_ref();
        let fee = fee_tx.map(|fee| FeeRow {
            amount: fee.signed_amount,
            description: fee.description,
            external_ref: fee_ref,
        });
        self.book(event, wallet_id, &tx, "striga", (external_ref, None), fee)
            .await
    }

    /// Classifies within the budget and books, once per external reference and per identity
    /// (`refs`), with its fee row if it has one.
    async fn book(
        &self,
        event: &events::Event,
        wallet_id: uuid::Uuid,
        tx: &NormalizedTransaction,
        source: &'static str,
        (external_ref, identity_key): (String, Option<String>),
        fee: Option<FeeRow>,
    ) -> Result<&'static str, Failure> {
        tx.check_date(chrono::Utc::now())
            .map_err(|e| Failure::Event(e.reason(), e.to_string()))?;
        let (category, classified_by, confidence, tags) = self.classify(event.ws_id, event.id, tx).await;
        // its point on the account's balance chain, whichever event books it: a missing
        // neighbour shows as a gap within seconds (SePay's; Striga reports no running balance)
        let balance_point = tx.sepay_id.zip(tx.accumulated).map(|(sepay_id, accumulated)| {
            let point = BalancePoint {
                sepay_id,
                taken_at: tx.taken_at,
                amount: tx.signed_amount,
                accumulated,
            };
            (tx.account_number.clone(), point)
        });
        let booking = Booking {
            event_id: event.id,
            ws_id: event.ws_id,
            wallet_id,
            amount: tx.signed_amount,
            description: tx.description.clone(),
            taken_at: tx.taken_at,
            source,
            external_ref,
            identity_key,
            category,
            classified_by,
            confidence,
            tags,
            fee,
            balance_point,
        };
        let booked = self
            .booker
            .submit(booking)
            .await
            .map_err(|Stopped| Failure::Stopping)??;
        if let Booked::Created(_) = booked {
            // from the delivery (or reopen) that opened this attempt to the commit
            let latency = (chrono::Utc::now() - event.opened_at).to_std().unwrap_or_default();
            metrics::histogram!("sepay_event_end_to_end_seconds").record(latency.as_secs_f64());
        }
        Ok(match booked {
            Booked::Created(_) => "booked",
            Booked::AlreadyProcessed => "already_processed",
            Booked::DuplicateOf(_) => "duplicate",
        })
    }

    /// The endpoint's wallet if set, else the link for (account, sub account); it must hold VND,
    /// what SePay's accounts book (the store refuses other links; this guards what predates it).
    async fn resolve_wallet(
        &self,
        ws_id: uuid::Uuid,
        endpoint_id: Option<uuid::Uuid>,
        tx: &NormalizedTransaction,
    ) -> Result<uuid::Uuid, Failure> {
        let (wallet_id, currency) = self
            .settings
            .wallet(ws_id, endpoint_id, &tx.account_number, tx.sub_account.as_deref())
            .await?
            .ok_or_else(|| {
                Failure::Event(
                    FailureReason::WalletNotLinked,
                    format!(
                        "no wallet linked to account {}{}",
                        tx.account_number,
                        tx.sub_account.as_deref().map(|s| format!(" / {s}")).unwrap_or_default()
                    ),
                )
            })?;
        if currency != SEPAY_CURRENCY {
            return Err(Failure::Event(
                FailureReason::WalletCurrencyMismatch,
                format!("SePay books {SEPAY_CURRENCY} but wallet {wallet_id} holds {currency}"),
            ));
        }
        Ok(wallet_id)
    }

    /// The chain's choice within the time budget, else the fallback category (tags kept).
    async fn classify(
        &self,
        ws_id: uuid::Uuid,
        event_id: i64,
        tx: &NormalizedTransaction,
    ) -> (CategoryChoice, String, Option<f32>, Vec<String>) {
        let deadline = tokio::time::Instant::now() + self.classify_budget;
        let input = ClassifyInput {
            ws_id,
            event_id,
            tx,
            deadline,
        };
        // the chain bounds itself by the deadline; this is the backstop for any classifier
        let backstop = deadline + CLASSIFY_BACKSTOP_GRACE;
        let verdict = match tokio::time::timeout_at(backstop, self.classifier.classify(&input)).await {
            Ok(Ok(verdict)) => verdict.unwrap_or_default(),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "classifier failed; using the fallback category");
                Default::default()
            }
            Err(_) => {
                tracing::warn!(
                    budget_ms = self.classify_budget.as_millis() as u64,
                    "classifier timed out; using the fallback category"
                );
                Default::default()
            }
        };
        if let Some(category) = verdict.category_id {
            return (
                CategoryChoice::Existing(category),
                verdict.decided_by,
                verdict.confidence,
                verdict.tags,
            );
        }
        let name = if tx.direction.is_expense() {
            FALLBACK_EXPENSE
        } else {
            FALLBACK_INCOME
        };
        (
            CategoryChoice::Fallback {
                name: name.to_owned(),
                is_expense: tx.direction.is_expense(),
            },
            FALLBACK_DECIDER.to_owned(),
            None,
            verdict.tags,
        )
    }
}

/// How long past its deadline a classifier that ignores it is waited for.
const CLASSIFY_BACKSTOP_GRACE: Duration = Duration::from_millis(50);

enum Failure {
    /// The event cannot be booked as it is; recorded on the row.
    Event(FailureReason, String),
    /// Postgres trouble: retry.
    Store(StoreError),
    /// The row does not exist.
    Gone,
    /// The batch writers have stopped.
    Stopping,
}

impl From<StoreError> for Failure {
    /// A value Postgres cannot store fails the event at once; any other store error retries.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unstorable { message } => Self::Event(FailureReason::UnstorableValue, message),
            err => Self::Store(err),
        }
    }
}
