//! Group commit: callers submit one item each and wait for its own outcome, while one dispatcher
//! writes whatever has queued as one batch (one statement, one commit), with a few batches in
//! flight. The ingress stores deliveries this way and the processor reads and books events.
//!
//! No fixed linger: a batch is whatever queued while the earlier ones were being written, up to
//! `max_batch`. A lone item is written at once; under load the batches grow by themselves and
//! the commits are shared.

use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How a [`GroupCommit`] batches.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items per batch at most.
    pub max_batch: usize,
    /// Batches being written at once (each usually holds one database connection).
    pub writers: usize,
    /// Items waiting for a writer; past this, submitters wait (back-pressure).
    pub queue: usize,
}

/// The dispatcher is gone: the service is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch writer has stopped")]
pub struct Stopped;

struct Pending<I, O> {
    item: I,
    reply: oneshot::Sender<O>,
}

/// A queue of `I`, written in batches by `write` (called by the dispatcher, so it may keep state
/// between batches), which answers one `O` per item, in order.
pub struct GroupCommit<I, O>(mpsc::Sender<Pending<I, O>>);

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// The queue and its dispatcher, which ends once every sender is dropped and the batches in
    /// flight are written. `write` must answer as many outcomes as it was given items.
    pub fn start<W, F>(limits: Limits, write: W) -> (Self, tokio::task::JoinHandle<()>)
    where
        W: FnMut(Vec<I>) -> F + Send + 'static,
        F: Future<Output = Vec<O>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        (Self(tx), tokio::spawn(dispatch(limits, rx, write)))
    }

    /// Queues `item` and waits for its outcome.
    pub async fn submit(&self, item: I) -> Result<O, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.0.send(Pending { item, reply }).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

async fn dispatch<I, O, W, F>(limits: Limits, mut rx: mpsc::Receiver<Pending<I, O>>, mut write: W)
where
    I: Send + 'static,
    O: Send + 'static,
    W: FnMut(Vec<I>) -> F,
    F: Future<Output = Vec<O>> + Send + 'static,
{
    let writers = Arc::new(Semaphore::new(limits.writers.max(1)));
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        // a free writer first: what queues meanwhile joins this batch
        let Ok(permit) = writers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < limits.max_batch {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().map(|p| (p.item, p.reply)).unzip();
        let written = write(items);
        in_flight.spawn(async move {
            let outcomes = written.await;
            debug_assert_eq!(outcomes.len(), replies.len(), "one outcome per item");
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // a submitter that went away is answered by nothing
                let _ = reply.send(outcome);
            }
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn each_submitter_gets_its_own_outcome_and_batches_form_under_load() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (group, dispatcher) = GroupCommit::start(
            Limits {
                max_batch: 8,
                writers: 1,
                queue: 100,
            },
            {
                let sizes = sizes.clone();
                move |items: Vec<u32>| {
                    sizes.lock().unwrap().push(items.len());
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
                    }
                }
            },
        );
        let answers = futures::future::join_all((0..40u32).map(|i| {
            let group = group.clone();
            async move { group.submit(i).await }
        }))
        .await;
        assert_eq!(answers, (0..40u32).map(|i| Ok(i * 10)).collect::<Vec<_>>());
        let sizes = sizes.lock().unwrap().clone();
        assert!(sizes.iter().all(|&n| (1..=8).contains(&n)), "{sizes:?}");
        assert!(sizes.len() < 40, "concurrent items share batches: {sizes:?}");
        drop(group);
        dispatcher.await.unwrap();
    }
}
