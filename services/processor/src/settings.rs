//! Each workspace's booking settings in memory: the wallet an (endpoint, account, sub account)
//! books into and the workspace's classification rules, read once instead of per event. Every
//! change is announced by Postgres (`classification::BOOKING_SETTINGS_CHANNEL`, migration 13)
//! and drops the workspace's entries. Nothing is cached while the announcements cannot be heard
//! (before the first LISTEN, after a lost connection until it is back), and a read that raced an
//! announcement is not kept (a generation count), so a change applies to the next event.

use sepay_store::classification::RuleRow;
use sepay_store::{PgPool, StoreResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use uuid::Uuid;

/// Wallet resolutions kept at most (distinct accounts of authenticated deliveries); past this the
/// cache starts again.
const MAX_WALLETS: usize = 100_000;

type WalletKey = (Uuid, Option<Uuid>, String, Option<String>);

#[derive(Default)]
struct State {
    /// Bumped by every announcement: a read that started before one is not kept.
    generation: u64,
    wallets: HashMap<WalletKey, Option<(Uuid, String)>>,
    rules: HashMap<Uuid, Arc<Vec<RuleRow>>>,
}

pub struct BookingSettings {
    db: PgPool,
    listening: AtomicBool,
    state: Mutex<State>,
}

impl BookingSettings {
    /// The cache and the task that listens for changes (it ends when the cache is dropped).
    pub fn start(db: PgPool) -> Arc<Self> {
        let settings = Arc::new(Self {
            db,
            listening: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        tokio::spawn(listen(Arc::downgrade(&settings)));
        settings
    }

    /// Whether changes are being heard, so reads are kept.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `workspaces::wallet_for`, cached: the wallet and its currency, or none linked.
    pub async fn wallet(
        &self,
        ws_id: Uuid,
        endpoint_id: Option<Uuid>,
        account_number: &str,
        sub_account: Option<&str>,
    ) -> StoreResult<Option<(Uuid, String)>> {
        let key = (
            ws_id,
            endpoint_id,
            account_number.to_owned(),
            sub_account.map(str::to_owned),
        );
        let generation = {
            let state = self.state();
            if let Some(found) = state.wallets.get(&key) {
                return Ok(found.clone());
            }
            state.generation
        };
        let found =
            sepay_store::workspaces::wallet_for(&self.db, ws_id, endpoint_id, account_number, sub_account).await?;
        if self.listening.load(Ordering::Acquire) {
            let mut state = self.state();
            if state.generation == generation {
                if state.wallets.len() >= MAX_WALLETS {
                    state.wallets.clear();
                }
                state.wallets.insert(key, found.clone());
            }
        }
        Ok(found)
    }

    /// `classification::rules`, cached.
    pub async fn rules(&self, ws_id: Uuid) -> StoreResult<Arc<Vec<RuleRow>>> {
        let generation = {
            let state = self.state();
            if let Some(found) = state.rules.get(&ws_id) {
                return Ok(found.clone());
            }
            state.generation
        };
        let found = Arc::new(sepay_store::classification::rules(&self.db, ws_id).await?);
        if self.listening.load(Ordering::Acquire) {
            let mut state = self.state();
            if state.generation == generation {
                state.rules.insert(ws_id, found.clone());
            }
        }
        Ok(found)
    }

    /// One workspace's settings changed (`None`: any may have: announcements were missed, or one
    /// could not be read).
    fn forget(&self, ws_id: Option<Uuid>) {
        let mut state = self.state();
        state.generation += 1;
        match ws_id {
            Some(ws_id) => {
                state.wallets.retain(|key, _| key.0 != ws_id);
                state.rules.remove(&ws_id);
            }
            None => {
                state.wallets.clear();
                state.rules.clear();
            }
        }
    }
}

async fn listen(settings: Weak<BookingSettings>) {
    loop {
        let Some(db) = settings.upgrade().map(|s| s.db.clone()) else {
            return;
        };
        if db.is_closed() {
            return;
        }
        let mut listener = match sepay_store::classification::listen_for_booking_settings(&db).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "booking settings not cached: cannot listen for changes");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        drop(db);
        let Some(s) = settings.upgrade() else { return };
        // anything read before this LISTEN may have changed unannounced
        s.forget(None);
        s.listening.store(true, Ordering::Release);
        drop(s);
        loop {
            // wake now and then to end with the cache
            let next = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
            let Some(s) = settings.upgrade() else { return };
            match next {
                Err(_) => continue,
                // an unreadable payload: forget everything rather than guess
                Ok(Ok(Some(notification))) => s.forget(notification.payload().parse().ok()),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    // the connection was lost: announcements may be missed until it is back
                    s.listening.store(false, Ordering::Release);
                    s.forget(None);
                    break;
                }
            }
        }
    }
}
