//! Wake completion: webhook delivery with retries (PROTOCOL.md §7.1), and the token-authenticated
//! callback, ack and release (§7.1–§7.3), all fenced by generation and wake id.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::engine::Engine;
use super::signing::TokenClaims;
use super::state::{Delivery, Subscription, Tails};
use super::{SubError, ssrf};
use crate::model::Owner;
use crate::offset::Offset;

/// How long one webhook request may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest webhook response body read (only `{"done": true}` matters).
const MAX_RESPONSE: usize = 64 * 1024;
/// Retry backoff bounds (§7.1: 1 s to 60 s, 20 % jitter).
const FIRST_RETRY_MS: u64 = 1_000;
const LAST_RETRY_MS: u64 = 60_000;

/// Which endpoint a wake token is presented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// `POST …/callback` (webhook).
    Callback,
    /// `POST …/ack` (pull-wake).
    Ack,
    /// `POST …/release` (pull-wake).
    Release,
}

/// `wake_id` and `generation` of a callback, ack or release body.
fn fence_fields(body: &Value) -> Result<(String, u64), SubError> {
    let wake = body.get("wake_id").and_then(Value::as_str);
    let generation = body.get("generation").and_then(Value::as_u64);
    match (wake, generation) {
        (Some(w), Some(g)) => Ok((w.to_owned(), g)),
        _ => Err(SubError::new(
            400,
            "INVALID_REQUEST",
            "wake_id and generation are required",
        )),
    }
}

/// `acks` of a body: `(stream, offset)` pairs.
fn parse_acks(body: &Value) -> Result<Vec<(String, Offset)>, SubError> {
    let invalid = |m: &str| SubError::new(409, "INVALID_OFFSET", m);
    let Some(items) = body.get("acks").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|ack| {
            let stream = ack
                .get("stream")
                .or_else(|| ack.get("path"))
                .and_then(Value::as_str);
            let offset = ack.get("offset").and_then(Value::as_str);
            match (stream, offset) {
                (Some(s), Some(o)) => Ok((
                    super::state::normalize_path(s)?,
                    Offset::parse(o)
                        .map_err(|_| invalid("ack offset is not an offset of this server"))?,
                )),
                _ => Err(SubError::new(
                    400,
                    "INVALID_REQUEST",
                    "each ack needs stream and offset",
                )),
            }
        })
        .collect()
}

/// Moves cursors: each acked stream must be linked, and the offset between its cursor and tail.
fn apply_acks(
    sub: &mut Subscription,
    acks: &[(String, Offset)],
    tails: &Tails,
) -> Result<(), SubError> {
    let invalid = |m: &str| SubError::new(409, "INVALID_OFFSET", m);
    for (stream, offset) in acks {
        let link = sub
            .links
            .get(stream)
            .ok_or_else(|| invalid("ack names a stream the subscription does not link"))?;
        if *offset < link.acked {
            return Err(invalid("ack offset regresses the cursor"));
        }
        if tails.get(stream).is_some_and(|tail| offset > tail) {
            return Err(invalid("ack offset is beyond the stream's tail"));
        }
    }
    for (stream, offset) in acks {
        if let Some(link) = sub.links.get_mut(stream) {
            link.acked = *offset;
        }
    }
    Ok(())
}

impl Engine {
    /// `POST …/callback`, `…/ack`, `…/release` with `Authorization: Bearer <token>`: the body
    /// for 200, `None` for 204.
    pub(crate) async fn finish(
        self: &Arc<Self>,
        token: &str,
        id: &str,
        body: &Value,
        kind: Finish,
    ) -> Result<Option<Value>, SubError> {
        let invalid_token = || SubError::new(401, "TOKEN_INVALID", "invalid wake token");
        let claims = self
            .signer()
            .await?
            .verify(token)
            .ok_or_else(invalid_token)?;
        if claims.s != id {
            return Err(invalid_token());
        }
        let (wake_id, generation) = fence_fields(body)?;
        let acks = parse_acks(body)?;
        let done =
            kind == Finish::Release || body.get("done").and_then(Value::as_bool) == Some(true);
        let owner = Owner(claims.o.clone());
        let streams: Vec<String> = acks.iter().map(|(s, _)| s.clone()).collect();
        self.update(&owner, id, &streams, &mut |sub, tails, now, effects| {
            let webhook = matches!(sub.spec.delivery, Delivery::Webhook { .. });
            if webhook != (kind == Finish::Callback) {
                return Err(SubError::new(
                    400,
                    "INVALID_REQUEST",
                    "this endpoint does not serve this subscription's delivery type",
                ));
            }
            fence(sub, &claims, &wake_id, generation)?;
            apply_acks(sub, &acks, tails)?;
            if !done {
                sub.extend_lease(now, effects);
                return Ok(Some(json!({"ok": true, "next_wake": false})));
            }
            sub.wake = None;
            let next_wake = sub.maybe_wake(tails, now, effects);
            Ok((kind != Finish::Release).then(|| json!({"ok": true, "next_wake": next_wake})))
        })
        .await
    }

    /// Delivers wake `wake_id` to the webhook, retrying with backoff until it is answered or
    /// the wake is over (acked, expired, or the subscription deleted).
    pub(super) async fn deliver(self: Arc<Self>, owner: Owner, id: String, wake_id: String) {
        loop {
            let Ok(Some((sub, _))) = self.subs.get(&owner, &id).await else {
                return;
            };
            if sub.wake.as_ref().is_none_or(|w| w.id != wake_id) {
                return;
            }
            let outcome = match self.post_wake(&owner, &sub).await {
                Ok(done) => self.delivered(&owner, &id, &wake_id, done).await,
                Err(e) => {
                    tracing::warn!(subscription = %id, error = %e, "durable streams: webhook delivery failed");
                    self.failed(&owner, &id, &wake_id).await
                }
            };
            match outcome {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return,
            }
        }
    }

    /// Sends the signed wake; `Ok(done)` on a 2xx answer.
    async fn post_wake(&self, owner: &Owner, sub: &Subscription) -> Result<bool, String> {
        let Delivery::Webhook { url } = &sub.spec.delivery else {
            return Err("not a webhook subscription".into());
        };
        let wake = sub.wake.as_ref().ok_or("no wake in flight")?;
        let signer = self.signer().await.map_err(|e| e.message)?;
        let claims = TokenClaims {
            o: owner.0.clone(),
            s: sub.id.clone(),
            g: sub.generation,
            w: wake.id.clone(),
        };
        let body = json!({
            "subscription_id": sub.id, "wake_id": wake.id, "generation": sub.generation,
            "streams": sub.stream_infos(&wake.snapshot),
            "callback_url": format!("{}/__ds/subscriptions/{}/callback", sub.base_url, sub.id),
            "callback_token": signer.token(&claims),
        })
        .to_string();
        let target = ssrf::check(url, self.dev_loopback)?;
        let addrs = ssrf::resolve(&target).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(WEBHOOK_TIMEOUT)
            .resolve_to_addrs(&target.host, &addrs)
            .build()
            .map_err(|e| e.to_string())?;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut response = client
            .post(target.url)
            .header("content-type", "application/json")
            .header(
                "webhook-signature",
                signer.sign_webhook(body.as_bytes(), unix),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the webhook answered {}", response.status()));
        }
        let mut answer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            answer.extend_from_slice(&chunk);
            if answer.len() > MAX_RESPONSE {
                break;
            }
        }
        let parsed: Option<Value> = serde_json::from_slice(&answer).ok();
        Ok(parsed.and_then(|v| v.get("done").and_then(Value::as_bool)) == Some(true))
    }

    /// A 2xx answer: status back to active; `done` acks the wake's snapshot and ends it (the
    /// commit then wakes again if more arrived).
    async fn delivered(
        self: &Arc<Self>,
        owner: &Owner,
        id: &str,
        wake_id: &str,
        done: bool,
    ) -> Option<Duration> {
        let _ = self
            .update(owner, id, &[], &mut |sub, _, _, _| {
                if sub.wake.as_ref().is_none_or(|w| w.id != wake_id) {
                    return Ok(());
                }
                sub.retry_count = 0;
                sub.next_attempt_at_ms = None;
                if done {
                    let snapshot = sub.wake.take().map(|w| w.snapshot).unwrap_or_default();
                    for (path, tail) in snapshot {
                        if let Some(link) = sub.links.get_mut(&path) {
                            link.acked = link.acked.max(tail);
                        }
                    }
                }
                Ok(())
            })
            .await;
        None
    }

    /// A failed attempt: status `failed`, the next attempt scheduled with backoff.
    async fn failed(self: &Arc<Self>, owner: &Owner, id: &str, wake_id: &str) -> Option<Duration> {
        self.update(owner, id, &[], &mut |sub, _, now, _| {
            if sub.wake.as_ref().is_none_or(|w| w.id != wake_id) {
                return Ok(None);
            }
            sub.retry_count = sub.retry_count.saturating_add(1);
            let base = FIRST_RETRY_MS
                .saturating_mul(1 << sub.retry_count.min(7).saturating_sub(1))
                .min(LAST_RETRY_MS);
            let delay = (base as f64 * (0.8 + 0.4 * fastrand::f64())) as u64;
            sub.next_attempt_at_ms = Some(now + delay as i64);
            Ok(Some(Duration::from_millis(delay)))
        })
        .await
        .ok()
        .flatten()
    }
}

/// §7.3: the token's and the request's generation and wake id must be the current ones.
fn fence(
    sub: &Subscription,
    claims: &TokenClaims,
    wake_id: &str,
    generation: u64,
) -> Result<(), SubError> {
    let current = sub.wake.as_ref().map(|w| w.id.as_str());
    if claims.g != sub.generation
        || generation != sub.generation
        || current != Some(wake_id)
        || claims.w != wake_id
    {
        return Err(SubError::fenced());
    }
    Ok(())
}
