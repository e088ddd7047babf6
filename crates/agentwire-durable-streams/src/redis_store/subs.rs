//! Subscription state in Redis (the [`SubscriptionStore`] of the redis store), shared by every
//! node: `<prefix>:sub:<owner>/<id>` (a hash of the document as JSON and its version),
//! `<prefix>:subs:<owner>` (the owner's subscription ids), `<prefix>:subv:` (the version counter,
//! so versions are never reused) and `<prefix>:sigkey:` (the signing key seed, set once).

use std::sync::LazyLock;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use redis::{AsyncCommands, Script};

use super::{RedisStore, store_error};
use crate::DsError;
use crate::model::Owner;
use crate::subscription::{Subscription, SubscriptionStore};

/// Compare-and-set of one subscription document: writes only if its version is still
/// `ARGV[1]` (`''`: absent), under a fresh version, and records the id under its owner.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], 'v')
if (cur or '') ~= ARGV[1] then return 0 end
local v = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'v', v, 'doc', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
",
    )
});

impl RedisStore {
    fn sub_key(&self, owner: &Owner, id: &str) -> String {
        self.key("sub", &format!("{}/{id}", owner.0))
    }
}

#[async_trait]
impl SubscriptionStore for RedisStore {
    async fn signing_seed(&self) -> Result<[u8; 32], DsError> {
        let key = self.key("sigkey", "");
        let mut conn = self.conn().await?;
        let candidate = B64.encode(crate::subscription::random_seed());
        // The first node to get here sets the seed; everyone reads the one that won.
        let _: bool = conn.set_nx(&key, candidate).await.map_err(store_error)?;
        let stored: String = conn.get(&key).await.map_err(store_error)?;
        B64.decode(stored)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| store_error(format!("{key} does not hold a 32-byte key seed")))
    }

    async fn get(&self, owner: &Owner, id: &str) -> Result<Option<(Subscription, u64)>, DsError> {
        let (version, doc): (Option<u64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.sub_key(owner, id))
            .arg("v")
            .arg("doc")
            .query_async(&mut self.conn().await?)
            .await
            .map_err(store_error)?;
        match (version, doc) {
            (Some(v), Some(doc)) => serde_json::from_str(&doc)
                .map(|sub| Some((sub, v)))
                .map_err(|e| store_error(format!("subscription {id}: {e}"))),
            _ => Ok(None),
        }
    }

    async fn put(
        &self,
        owner: &Owner,
        sub: &Subscription,
        expected: Option<u64>,
    ) -> Result<bool, DsError> {
        let doc = serde_json::to_string(sub).map_err(store_error)?;
        let written: i64 = PUT
            .key(self.sub_key(owner, &sub.id))
            .key(self.key("subs", &owner.0))
            .key(self.key("subv", ""))
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(doc)
            .arg(&sub.id)
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(store_error)?;
        Ok(written == 1)
    }

    async fn remove(&self, owner: &Owner, id: &str) -> Result<(), DsError> {
        redis::pipe()
            .atomic()
            .del(self.sub_key(owner, id))
            .srem(self.key("subs", &owner.0), id)
            .query_async::<()>(&mut self.conn().await?)
            .await
            .map_err(store_error)
    }

    async fn ids(&self, owner: &Owner) -> Result<Vec<String>, DsError> {
        self.conn()
            .await?
            .smembers(self.key("subs", &owner.0))
            .await
            .map_err(store_error)
    }
}
