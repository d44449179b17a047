//! The live webhook endpoints, in memory: an unknown token or a wrong key is refused without a
//! database round trip, so junk traffic cannot load Postgres nor slow honest deliveries.
//!
//! Kept fresh by Postgres: every change that alters authentication is announced on
//! `sepay_endpoints` (migration 000006) and that one row is reloaded at once; a full reload runs at
//! start, after the listening connection comes back (announcements may have been missed) and every
//! `ENDPOINT_REFRESH_SECS` as a safety net. A rotating endpoint's `grace_until` is checked at each
//! use. Until the first load succeeds the directory is not ready and lookups go to Postgres.

use chrono::Utc;
use sepay_store::PgPool;
use sepay_store::endpoints::{self, EndpointAuth, LiveEndpoint};
use sepay_telemetry::metrics;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type TokenHash = Vec<u8>;

#[derive(Default)]
struct Entries {
    by_token: HashMap<TokenHash, LiveEndpoint>,
    token_of: HashMap<Uuid, TokenHash>,
}

impl Entries {
    fn remove(&mut self, id: Uuid) {
        if let Some(token) = self.token_of.remove(&id) {
            self.by_token.remove(&token);
        }
    }

    fn put(&mut self, endpoint: LiveEndpoint) {
        self.remove(endpoint.id);
        self.token_of.insert(endpoint.id, endpoint.token_hash.clone());
        self.by_token.insert(endpoint.token_hash.clone(), endpoint);
    }
}

#[derive(Default)]
pub struct Directory {
    entries: RwLock<Entries>,
    ready: AtomicBool,
}

/// What a lookup says.
pub enum Lookup {
    Found(EndpointAuth),
    Unknown,
    /// Not loaded yet: ask Postgres.
    NotReady,
}

impl Directory {
    pub fn lookup(&self, token_hash: &[u8]) -> Lookup {
        if !self.ready.load(Ordering::Acquire) {
            return Lookup::NotReady;
        }
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.by_token.get(token_hash) {
            Some(e) if e.grace_until.is_none_or(|until| until > Utc::now()) => Lookup::Found(EndpointAuth {
                id: e.id,
                ws_id: e.ws_id,
                provider: e.provider,
                api_key_hash: e.api_key_hash.clone(),
                signing_key_ciphertext: e.signing_key_ciphertext.clone(),
            }),
            _ => Lookup::Unknown,
        }
    }

    async fn reload_all(&self, db: &PgPool) -> sepay_store::StoreResult<()> {
        let live = endpoints::live_endpoints(db).await?;
        let mut fresh = Entries::default();
        for endpoint in live {
            fresh.put(endpoint);
        }
        let count = fresh.by_token.len();
        *self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        self.ready.store(true, Ordering::Release);
        metrics::gauge!("sepay_ingress_live_endpoints").set(count as f64);
        Ok(())
    }

    async fn reload_one(&self, db: &PgPool, id: Uuid) -> sepay_store::StoreResult<()> {
        let live = endpoints::live_endpoint(db, id).await?;
        let mut entries = self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match live {
            Some(endpoint) => entries.put(endpoint),
            None => entries.remove(id),
        }
        metrics::gauge!("sepay_ingress_live_endpoints").set(entries.by_token.len() as f64);
        Ok(())
    }

    /// Loads, then follows announcements until `shutdown`.
    pub async fn keep_fresh(&self, db: PgPool, refresh: Duration, shutdown: CancellationToken) {
        let mut full_reload = tokio::time::interval(refresh);
        full_reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listener = None;
        loop {
            if listener.is_none() {
                match endpoints::listen_for_changes(&db).await {
                    // listening first, then loading: no change can fall between the two
                    Ok(l) => listener = Some(l),
                    Err(err) => tracing::warn!(error = %err, "cannot listen for endpoint changes; retrying"),
                }
                if let Err(err) = self.reload_all(&db).await {
                    tracing::warn!(error = %err, "endpoint directory not loaded");
                }
            }
            let notification = async {
                match listener.as_mut() {
                    Some(l) => l.try_recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = full_reload.tick() => {
                    if let Err(err) = self.reload_all(&db).await {
                        tracing::warn!(error = %err, "endpoint directory reload failed");
                    }
                }
                received = notification => match received {
                    Ok(Some(n)) => match n.payload().parse::<Uuid>() {
                        Ok(id) => {
                            if let Err(err) = self.reload_one(&db, id).await {
                                tracing::warn!(error = %err, "endpoint reload failed; reloading all");
                                let _ = self.reload_all(&db).await;
                            }
                        }
                        Err(_) => tracing::warn!("unexpected endpoint announcement"),
                    },
                    // the connection was lost and is back: what was announced meanwhile is gone
                    Ok(None) => {
                        if let Err(err) = self.reload_all(&db).await {
                            tracing::warn!(error = %err, "endpoint directory reload failed");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "endpoint announcements lost; listening again");
                        listener = None;
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                },
            }
        }
    }
}
