//! The subscription operations: each loads a subscription, applies the rules of
//! [`state`](super::state), commits by compare-and-set, and then runs the effects (webhook
//! delivery, wake events, lease checks).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::signing::{Signer, TokenClaims};
use super::state::{Delivery, Effect, Subscription, Tails, link_type, parse_spec, parse_streams};
use super::{SubError, SubscriptionStore, ssrf};
use crate::memory::now_ms;
use crate::model::{AppendRequest, Owner};
use crate::offset::Offset;
use crate::{DsError, StreamStore};

/// Compare-and-set attempts before answering 503.
const MAX_ATTEMPTS: usize = 32;

/// Subscriptions over a stream store (shared by the HTTP handlers and background tasks).
pub(crate) struct Engine {
    pub(super) streams: Arc<dyn StreamStore>,
    pub(super) subs: Arc<dyn SubscriptionStore>,
    signer: OnceCell<Arc<Signer>>,
    pub(super) dev_loopback: bool,
    max_per_owner: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// A background task.
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A rule applied to a loaded subscription: (subscription, tails, now in ms, effects).
type Rule<'a, R> =
    dyn FnMut(&mut Subscription, &Tails, i64, &mut Vec<Effect>) -> Result<R, SubError> + Send + 'a;

impl Engine {
    pub(crate) fn new(
        streams: Arc<dyn StreamStore>,
        subs: Arc<dyn SubscriptionStore>,
        dev_loopback: bool,
        max_per_owner: u64,
    ) -> Self {
        Self {
            streams,
            subs,
            signer: OnceCell::new(),
            dev_loopback,
            max_per_owner,
        }
    }

    pub(super) async fn signer(&self) -> Result<Arc<Signer>, SubError> {
        self.signer
            .get_or_try_init(|| async {
                let seed = self.subs.signing_seed().await?;
                Ok::<_, DsError>(Arc::new(Signer::new(&seed)))
            })
            .await
            .cloned()
            .map_err(SubError::from)
    }

    /// `GET /__ds/jwks.json`.
    pub(crate) async fn jwks(&self) -> Result<Value, SubError> {
        Ok(self.signer().await?.jwks())
    }

    /// The tails of `paths` for `owner` (zero for a stream that does not exist).
    async fn tails<'p>(&self, owner: &Owner, paths: impl Iterator<Item = &'p String>) -> Tails {
        let mut tails = Tails::new();
        for path in paths {
            let tail = match self.streams.head(&format!("/{path}"), owner).await {
                Ok(info) => info.tail,
                Err(_) => Offset::ZERO,
            };
            tails.insert(path.clone(), tail);
        }
        tails
    }

    /// Loads, applies `rule`, lets a lapsed lease go and wakes when idle with pending work,
    /// commits, runs the effects. `extra`: streams whose tails the rule needs beyond the links.
    pub(super) async fn update<R>(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        extra: &[String],
        rule: &mut Rule<'_, R>,
    ) -> Result<R, SubError> {
        for _ in 0..MAX_ATTEMPTS {
            let (loaded, version) = self
                .subs
                .get(owner, id)
                .await?
                .ok_or_else(SubError::not_found)?;
            let paths: BTreeSet<&String> = loaded.links.keys().chain(extra).collect();
            let tails = self.tails(owner, paths.into_iter()).await;
            let now = now_ms();
            let mut sub = loaded.clone();
            let mut effects = Vec::new();
            sub.expire_lease(now);
            let out = rule(&mut sub, &tails, now, &mut effects)?;
            sub.maybe_wake(&tails, now, &mut effects);
            if sub == loaded {
                return Ok(out);
            }
            if self.subs.put(owner, &sub, Some(version)).await? {
                self.run(owner, &sub, effects).await;
                return Ok(out);
            }
        }
        Err(SubError::new(
            503,
            "STORE_UNAVAILABLE",
            "too many concurrent changes; retry",
        ))
    }

    async fn run(self: &Arc<Self>, owner: &Owner, sub: &Subscription, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Deliver { wake_id } => {
                    let task = self
                        .clone()
                        .deliver_task(owner.clone(), sub.id.clone(), wake_id);
                    tokio::spawn(task);
                }
                Effect::WakeEvent { stream, generation } => {
                    self.wake_event(owner, sub, &stream, generation).await;
                }
                Effect::LeaseCheck { after_ms, .. } => {
                    let task = self
                        .clone()
                        .lease_task(owner.clone(), sub.id.clone(), after_ms);
                    tokio::spawn(task);
                }
            }
        }
    }

    /// Once the lease may have ended: lets it go and wakes again if work is pending. (Boxed:
    /// the task commits through [`update`](Self::update), which spawns tasks itself.)
    fn lease_task(self: Arc<Self>, owner: Owner, id: String, after_ms: u64) -> Task {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(after_ms + 1)).await;
            let _ = self
                .update(&owner, &id, &[], &mut |_, _, _, _| Ok(()))
                .await;
        })
    }

    /// [`deliver`](Self::deliver) as a task (boxed like [`lease_task`](Self::lease_task)).
    fn deliver_task(self: Arc<Self>, owner: Owner, id: String, wake_id: String) -> Task {
        Box::pin(self.deliver(owner, id, wake_id))
    }

    /// Appends a wake event to the pull-wake stream (§7.2); the application creates that stream.
    async fn wake_event(&self, owner: &Owner, sub: &Subscription, stream: &str, generation: u64) {
        let Delivery::PullWake { wake_stream } = &sub.spec.delivery else {
            return;
        };
        let event = json!({
            "type": "wake", "subscription_id": sub.id, "stream": stream,
            "generation": generation, "ts": now_ms(),
        });
        let req = AppendRequest {
            caller: owner.clone(),
            content_type: Some("application/json".into()),
            stream_seq: None,
            producer: None,
            close: false,
            body: Bytes::from(event.to_string()),
        };
        if let Err(e) = self.streams.append(&format!("/{wake_stream}"), req).await {
            tracing::warn!(subscription = %sub.id, wake_stream, error = %e, "durable streams: cannot write the wake event");
        }
    }

    /// `PUT /__ds/subscriptions/:id`: `(created, view)`.
    pub(crate) async fn create(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        body: &Value,
        base_url: &str,
    ) -> Result<(bool, Value), SubError> {
        if !super::state::valid_id(id) {
            return Err(SubError::new(
                400,
                "INVALID_REQUEST",
                "subscription ids are 1-128 of A-Z a-z 0-9 . _ -",
            ));
        }
        let dev = self.dev_loopback;
        let spec = parse_spec(body, |url| ssrf::check(url, dev).map(|_| ()))?;
        let hash = spec.hash();
        for _ in 0..MAX_ATTEMPTS {
            if let Some((existing, _)) = self.subs.get(owner, id).await? {
                if existing.hash != hash {
                    return Err(SubError::new(
                        409,
                        "SUBSCRIPTION_ALREADY_EXISTS",
                        "a subscription with this id exists with another configuration",
                    ));
                }
                return Ok((false, self.view(&existing, base_url).await?));
            }
            if self.subs.ids(owner).await?.len() as u64 >= self.max_per_owner {
                return Err(SubError::new(
                    429,
                    "RATE_LIMITED",
                    format!(
                        "at most {} subscriptions per user (durable_streams.max_subscriptions_per_user)",
                        self.max_per_owner
                    ),
                ));
            }
            let tails = self.tails(owner, spec.streams.iter()).await;
            let mut sub = Subscription {
                id: id.to_owned(),
                spec: spec.clone(),
                hash: hash.clone(),
                created_at: rfc3339_now(),
                base_url: base_url.to_owned(),
                links: Default::default(),
                generation: 0,
                wake: None,
                retry_count: 0,
                next_attempt_at_ms: None,
            };
            // Explicit streams are linked at their current tail (§6.4).
            for path in &spec.streams {
                sub.link(path, true, tails.get(path).copied().unwrap_or(Offset::ZERO));
            }
            if self.subs.put(owner, &sub, None).await? {
                return Ok((true, self.view(&sub, base_url).await?));
            }
        }
        Err(SubError::new(
            503,
            "STORE_UNAVAILABLE",
            "too many concurrent changes; retry",
        ))
    }

    /// The §6.3 view; `base_url` is the stream root this request came through.
    pub(crate) async fn view(&self, sub: &Subscription, base_url: &str) -> Result<Value, SubError> {
        let streams: Vec<Value> = sub
            .links
            .iter()
            .map(|(path, link)| json!({"path": path, "link_type": link_type(link), "acked_offset": link.acked.token()}))
            .collect();
        let (webhook, wake_stream) = match &sub.spec.delivery {
            Delivery::Webhook { url } => {
                let signing = json!({
                    "alg": "ed25519", "kid": self.signer().await?.kid(),
                    "jwks_url": format!("{base_url}/__ds/jwks.json"),
                });
                (json!({"url": url, "signing": signing}), Value::Null)
            }
            Delivery::PullWake { wake_stream } => (Value::Null, json!(wake_stream)),
        };
        let kind = match sub.spec.delivery {
            Delivery::Webhook { .. } => "webhook",
            Delivery::PullWake { .. } => "pull-wake",
        };
        Ok(json!({
            "id": sub.id, "subscription_id": sub.id, "type": kind,
            "pattern": sub.spec.pattern, "streams": streams, "webhook": webhook,
            "wake_stream": wake_stream, "lease_ttl_ms": sub.spec.lease_ttl_ms,
            "created_at": sub.created_at, "status": sub.status(),
            "description": sub.spec.description,
        }))
    }

    /// `GET /__ds/subscriptions/:id`.
    pub(crate) async fn get(
        &self,
        owner: &Owner,
        id: &str,
        base_url: &str,
    ) -> Result<Value, SubError> {
        let (sub, _) = self
            .subs
            .get(owner, id)
            .await?
            .ok_or_else(SubError::not_found)?;
        self.view(&sub, base_url).await
    }

    /// `DELETE /__ds/subscriptions/:id`.
    pub(crate) async fn delete(&self, owner: &Owner, id: &str) -> Result<(), SubError> {
        self.subs
            .get(owner, id)
            .await?
            .ok_or_else(SubError::not_found)?;
        Ok(self.subs.remove(owner, id).await?)
    }

    /// `POST /__ds/subscriptions/:id/streams`.
    pub(crate) async fn add_streams(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        body: &Value,
    ) -> Result<(), SubError> {
        let paths = parse_streams(body.get("streams"))?;
        self.update(owner, id, &paths, &mut |sub, tails, _, _| {
            for path in &paths {
                if !sub.link(path, true, tails.get(path).copied().unwrap_or(Offset::ZERO)) {
                    return Err(SubError::new(
                        429,
                        "RATE_LIMITED",
                        format!(
                            "a subscription links at most {} streams",
                            super::state::MAX_LINKS
                        ),
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// `DELETE /__ds/subscriptions/:id/streams/:path`.
    pub(crate) async fn remove_stream(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        path: &str,
    ) -> Result<(), SubError> {
        let path = super::state::normalize_path(path)?;
        self.update(owner, id, &[], &mut |sub, _, _, _| {
            sub.unlink_explicit(&path);
            Ok(())
        })
        .await
    }

    /// After `owner` wrote to `path` (stream-root-relative), whose tail was `from` before the
    /// write: links it to each matching subscription (a stream first seen now is linked at
    /// `from`, so this write is pending) and wakes idle ones.
    pub(crate) async fn on_write(self: &Arc<Self>, owner: &Owner, path: &str, from: Offset) {
        let ids = match self.subs.ids(owner).await {
            Ok(ids) => ids,
            Err(e) => {
                return tracing::warn!(error = %e, "durable streams: cannot list subscriptions");
            }
        };
        let extra = [path.to_owned()];
        for id in ids {
            let Ok(Some((sub, _))) = self.subs.get(owner, &id).await else {
                continue;
            };
            let linked = sub.links.contains_key(path);
            if !linked && !sub.matches(path) {
                continue;
            }
            // A wake in flight covers this write too: nothing changes until it ends (the
            // common case for a busy subscription, so its streams' tails are not read).
            let in_flight = sub
                .wake
                .as_ref()
                .is_some_and(|w| w.lease_until_ms.is_none_or(|until| until > now_ms()));
            if linked && in_flight {
                continue;
            }
            let result = self
                .update(owner, &id, &extra, &mut |sub, _, _, _| {
                    if sub.matches(path) && !sub.link(path, false, from) {
                        tracing::warn!(subscription = %sub.id, path, "durable streams: subscription link bound reached");
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = result {
                tracing::debug!(subscription = %id, code = e.code, "durable streams: wake skipped");
            }
        }
    }

    /// After `owner` deleted the stream at `path`: a glob link goes (a stream re-created there
    /// is linked again by its first write), an explicit one restarts at offset zero.
    pub(crate) async fn on_delete(self: &Arc<Self>, owner: &Owner, path: &str) {
        let Ok(ids) = self.subs.ids(owner).await else {
            return;
        };
        for id in ids {
            let linked = matches!(self.subs.get(owner, &id).await, Ok(Some((sub, _))) if sub.links.contains_key(path));
            if linked {
                let _ = self
                    .update(owner, &id, &[], &mut |sub, _, _, _| {
                        match sub.links.get_mut(path) {
                            Some(link) if link.explicit => {
                                link.glob = false;
                                link.acked = Offset::ZERO;
                            }
                            _ => {
                                sub.links.remove(path);
                            }
                        }
                        Ok(())
                    })
                    .await;
            }
        }
    }

    /// `POST …/claim` (§7.2).
    pub(crate) async fn claim(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        body: &Value,
    ) -> Result<Value, SubError> {
        let worker = body
            .get("worker")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty() && w.len() <= 256)
            .ok_or_else(|| SubError::new(400, "INVALID_REQUEST", "claim needs a worker name"))?
            .to_owned();
        let signer = self.signer().await?;
        let owner_name = owner.0.clone();
        self.update(owner, id, &[], &mut |sub, tails, now, effects| {
            if !matches!(sub.spec.delivery, Delivery::PullWake { .. }) {
                return Err(SubError::new(
                    400,
                    "INVALID_REQUEST",
                    "the subscription is not pull-wake",
                ));
            }
            if let Some(holder) = sub.wake.as_ref().and_then(|w| w.holder.clone()) {
                let mut e = SubError::new(409, "ALREADY_CLAIMED", "another worker holds the lease");
                e.extra.insert("current_holder".into(), holder.into());
                e.extra.insert("generation".into(), sub.generation.into());
                return Err(e);
            }
            if sub.first_pending(tails).is_none() {
                return Err(SubError::new(
                    409,
                    "NO_PENDING_WORK",
                    "the subscription has no pending work",
                ));
            }
            sub.maybe_wake(tails, now, effects);
            sub.extend_lease(now, effects);
            let wake = sub.wake.as_mut().expect("a wake is in flight");
            wake.holder = Some(worker.clone());
            let claims = TokenClaims {
                o: owner_name.clone(),
                s: sub.id.clone(),
                g: sub.generation,
                w: wake.id.clone(),
            };
            Ok(json!({
                "wake_id": wake.id, "generation": sub.generation, "token": signer.token(&claims),
                "streams": sub.stream_infos(tails), "lease_ttl_ms": sub.spec.lease_ttl_ms,
            }))
        })
        .await
    }
}

/// The current time as RFC 3339.
fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
