//! `SubscriptionStore`: where subscription state lives, and [`MemorySubscriptions`].

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::state::Subscription;
use crate::DsError;
use crate::model::Owner;

/// Storage for subscriptions: versioned documents per (owner, id), and the signing key seed.
///
/// # What an implementor must guarantee
/// - [`put`](Self::put) is a compare-and-set: it writes only if the stored version is still
///   `expected` (`None`: no document), and then gives it a version never used before (not
///   even by a deleted subscription of the same id, so a stale writer cannot hit a new one).
///   Every rule of PROTOCOL.md §7 (generations, leases, acks) runs on a loaded document and is
///   committed this way, so concurrent nodes never both issue a wake or both take a lease.
/// - [`signing_seed`](Self::signing_seed) returns the same seed to every caller, creating it
///   once, so all nodes sign with (and publish) one key.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// The Ed25519 seed of the webhook signing key, created on first use.
    async fn signing_seed(&self) -> Result<[u8; 32], DsError>;
    /// The subscription and its version.
    async fn get(&self, owner: &Owner, id: &str) -> Result<Option<(Subscription, u64)>, DsError>;
    /// Compare-and-set (see the trait docs); `false` when the version moved.
    async fn put(
        &self,
        owner: &Owner,
        sub: &Subscription,
        expected: Option<u64>,
    ) -> Result<bool, DsError>;
    /// Deletes the subscription (a no-op when absent).
    async fn remove(&self, owner: &Owner, id: &str) -> Result<(), DsError>;
    /// The ids of `owner`'s subscriptions.
    async fn ids(&self, owner: &Owner) -> Result<Vec<String>, DsError>;
}

/// Subscriptions in this process: lost on restart, one node only; the signing key is made at
/// start.
pub struct MemorySubscriptions {
    seed: [u8; 32],
    versions: std::sync::atomic::AtomicU64,
    subs: Mutex<HashMap<Owner, Versioned>>,
}

/// An owner's subscriptions by id, with their versions.
type Versioned = HashMap<String, (Subscription, u64)>;

impl std::fmt::Debug for MemorySubscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySubscriptions")
            .finish_non_exhaustive()
    }
}

impl Default for MemorySubscriptions {
    fn default() -> Self {
        Self {
            seed: super::signing::random_seed(),
            versions: Default::default(),
            subs: Mutex::default(),
        }
    }
}

#[async_trait]
impl SubscriptionStore for MemorySubscriptions {
    async fn signing_seed(&self) -> Result<[u8; 32], DsError> {
        Ok(self.seed)
    }

    async fn get(&self, owner: &Owner, id: &str) -> Result<Option<(Subscription, u64)>, DsError> {
        Ok(self.subs.lock().get(owner).and_then(|m| m.get(id)).cloned())
    }

    async fn put(
        &self,
        owner: &Owner,
        sub: &Subscription,
        expected: Option<u64>,
    ) -> Result<bool, DsError> {
        let mut subs = self.subs.lock();
        let mine = subs.entry(owner.clone()).or_default();
        let current = mine.get(&sub.id).map(|(_, v)| *v);
        if current != expected {
            return Ok(false);
        }
        let version = 1 + self
            .versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        mine.insert(sub.id.clone(), (sub.clone(), version));
        Ok(true)
    }

    async fn remove(&self, owner: &Owner, id: &str) -> Result<(), DsError> {
        let mut subs = self.subs.lock();
        if let Some(mine) = subs.get_mut(owner) {
            mine.remove(id);
            if mine.is_empty() {
                subs.remove(owner);
            }
        }
        Ok(())
    }

    async fn ids(&self, owner: &Owner) -> Result<Vec<String>, DsError> {
        Ok(self
            .subs
            .lock()
            .get(owner)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }
}
