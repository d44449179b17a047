//! Each workspace's booking settings in memory: the wallet an (endpoint, account, sub account)
//! books into and the workspace's classification rules, read once instead of per event. Every
//! change is announced by Postgres (`classification::BOOKING_SETTINGS_CHANNEL`, migration 13)
//! and drops the workspace's entries. Nothing is cached while the announcements cannot be heard
//! (before the first LISTEN, after a lost connection until it is back), and a read that raced an
//! announcement is not kept (a generation count), so a change applies to the next event.

use sepay_core::classify::Rule;
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
/// Workspaces whose rules are kept at most; past this the cache starts again.
const MAX_RULE_SETS: usize = 20_000;

/// Inserts into a cache of at most `max` entries: when it is full, the entries `stale` says may
/// go are dropped first, and everything if that frees nothing (a cache refills from Postgres;
/// memory must not grow with the number of workspaces).
pub(crate) fn insert_bounded<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    key: K,
    value: V,
    stale: impl Fn(&V) -> bool,
) {
    if map.len() >= max && !map.contains_key(&key) {
        map.retain(|_, v| !stale(v));
        if map.len() >= max {
            map.clear();
        }
    }
    map.insert(key, value);
}

type WalletKey = (Uuid, Option<Uuid>, String, Option<String>);

#[derive(Default)]
struct State {
    /// Bumped by every announcement: a read that started before one is not kept.
    generation: u64,
    wallets: HashMap<WalletKey, Option<(Uuid, String)>>,
    /// parsed once when read, not once per event
    rules: HashMap<Uuid, Arc<Vec<Rule<Uuid>>>>,
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
                insert_bounded(&mut state.wallets, MAX_WALLETS, key, found.clone(), |_| false);
            }
        }
        Ok(found)
    }

    /// `classification::rules`, compiled and cached.
    pub async fn rules(&self, ws_id: Uuid) -> StoreResult<Arc<Vec<Rule<Uuid>>>> {
        let generation = {
            let state = self.state();
            if let Some(found) = state.rules.get(&ws_id) {
                return Ok(found.clone());
            }
            state.generation
        };
        let rows = sepay_store::classification::rules(&self.db, ws_id).await?;
        let found: Arc<Vec<Rule<Uuid>>> = Arc::new(rows.iter().filter_map(RuleRow::rule).collect());
        if self.listening.load(Ordering::Acquire) {
            let mut state = self.state();
            if state.generation == generation {
                insert_bounded(&mut state.rules, MAX_RULE_SETS, ws_id, found.clone(), |_| false);
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

#[cfg(test)]
mod tests {
    use super::insert_bounded;
    use std::collections::HashMap;

    #[test]
    fn a_full_cache_drops_stale_entries_first_then_everything() {
        let mut map = HashMap::new();
        for (k, v) in [(1, "stale"), (2, "fresh"), (3, "fresh")] {
            insert_bounded(&mut map, 3, k, v, |v| *v == "stale");
        }
        assert_eq!(map.len(), 3);
        // full: the stale entry makes room
        insert_bounded(&mut map, 3, 4, "fresh", |v| *v == "stale");
        let mut keys: Vec<_> = map.keys().copied().collect();
        keys.sort();
        assert_eq!(keys, [2, 3, 4]);
        // full and nothing stale: it starts again
        insert_bounded(&mut map, 3, 5, "fresh", |v| *v == "stale");
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [5]);
        // replacing a key never evicts
        insert_bounded(&mut map, 1, 5, "newer", |_| false);
        assert_eq!(map[&5], "newer");
    }
}
