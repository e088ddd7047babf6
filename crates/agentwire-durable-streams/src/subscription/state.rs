//! A subscription's stored state (PROTOCOL.md §6.1) and the pure rules over it: parsing a
//! `PUT` body, glob matching, linking, pending work, wakes and leases (§7). Nothing here does
//! I/O; [`super::engine`] loads, applies these rules, and stores the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::SubError;
use crate::offset::Offset;

/// Lease bounds of §6.2 (1 s to 10 min, default 30 s).
pub(crate) const MIN_LEASE_MS: u64 = 1_000;
pub(crate) const MAX_LEASE_MS: u64 = 600_000;
const DEFAULT_LEASE_MS: u64 = 30_000;
/// Streams one subscription links at most; further matching streams are not linked.
pub(crate) const MAX_LINKS: usize = 1_024;
/// Longest subscription id, stream path, pattern or description accepted.
const MAX_TEXT: usize = 1_024;

/// How a subscription delivers its wakes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Delivery {
    /// A signed `POST` to `url` (§7.1).
    Webhook {
        /// The validated webhook URL.
        url: String,
    },
    /// Wake events appended to `wake_stream` (§7.2).
    PullWake {
        /// Stream-root-relative path of the wake channel.
        wake_stream: String,
    },
}

/// The configuration a `PUT` compares for idempotent re-confirmation (§6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Webhook or pull-wake.
    pub delivery: Delivery,
    /// Glob over stream-root-relative paths.
    pub pattern: Option<String>,
    /// Explicit stream paths, sorted and deduplicated.
    pub streams: Vec<String>,
    /// Lease duration.
    pub lease_ttl_ms: u64,
    /// Free text.
    pub description: Option<String>,
}

impl Spec {
    /// The hash of the normalized configuration (§6.2).
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One linked stream's cursor (§6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Matched by the pattern.
    pub glob: bool,
    /// Named in `streams[]`.
    pub explicit: bool,
    /// Last processed offset, inclusive.
    pub acked: Offset,
}

/// The wake in flight (§7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// Unique per wake.
    pub id: String,
    /// Each linked stream's tail when the wake was issued (what a synchronous `done` acks).
    pub snapshot: BTreeMap<String, Offset>,
    /// The pull-wake worker holding the lease.
    pub holder: Option<String>,
    /// When the lease ends (ms since the epoch); `None`: no lease (pull-wake not yet claimed).
    pub lease_until_ms: Option<i64>,
}

/// A subscription as stored: one document per (owner, id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Client-provided id.
    pub id: String,
    /// The configuration.
    pub spec: Spec,
    /// [`Spec::hash`] at creation.
    pub hash: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Absolute URL of the stream root the subscription was created under (callback URLs).
    pub base_url: String,
    /// Linked streams by path.
    pub links: BTreeMap<String, Link>,
    /// Fencing counter: bumped by every wake.
    pub generation: u64,
    /// The wake in flight.
    pub wake: Option<Wake>,
    /// Failed webhook attempts in a row (status `failed` while positive).
    pub retry_count: u32,
    /// When the next webhook attempt is due (ms since the epoch), while retrying.
    pub next_attempt_at_ms: Option<i64>,
}

/// Tail offsets of the streams a rule looks at (a missing stream has tail zero).
pub(crate) type Tails = BTreeMap<String, Offset>;

/// What must happen once a changed subscription is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// POST the wake to the webhook.
    Deliver { wake_id: String },
    /// Append a wake event to the wake stream.
    WakeEvent { stream: String, generation: u64 },
    /// Re-examine the wake once its lease may have ended.
    LeaseCheck { wake_id: String, after_ms: u64 },
}

fn invalid(message: impl Into<String>) -> SubError {
    SubError::new(400, "INVALID_REQUEST", message)
}

/// A stream-root-relative path: no leading or trailing `/`, no empty segment, not `__ds`.
pub(crate) fn normalize_path(raw: &str) -> Result<String, SubError> {
    let path = raw.trim_matches('/');
    if path.is_empty() || path.len() > MAX_TEXT || path.split('/').any(str::is_empty) {
        return Err(invalid(format!("invalid stream path {raw:?}")));
    }
    if path == "__ds" || path.starts_with("__ds/") {
        return Err(invalid("stream paths under __ds are reserved"));
    }
    Ok(path.to_owned())
}

/// A valid subscription id: 1–128 of `A-Z a-z 0-9 . _ -`.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `*` matches one segment, `**` zero or more (§6.2).
pub(crate) fn glob_match(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match_segments(&pattern, &path)
}

fn match_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| match_segments(rest, &path[i..])),
        Some((seg, rest)) => match path.split_first() {
            Some((first, tail)) => (*seg == "*" || seg == first) && match_segments(rest, tail),
            None => false,
        },
    }
}

/// Parses a `PUT` body into a [`Spec`]; `check_url` validates a webhook URL (SSRF, §12.8).
pub(crate) fn parse_spec(
    body: &Value,
    check_url: impl Fn(&str) -> Result<(), String>,
) -> Result<Spec, SubError> {
    let text = |name: &str| -> Result<Option<String>, SubError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= MAX_TEXT => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!(
                "{name} must be a string of at most {MAX_TEXT} bytes"
            ))),
        }
    };
    let delivery = match text("type")?.as_deref() {
        Some("webhook") => {
            let url = body
                .pointer("/webhook/url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a webhook subscription needs webhook.url"))?;
            check_url(url).map_err(|m| SubError::new(400, "WEBHOOK_URL_REJECTED", m))?;
            Delivery::Webhook {
                url: url.to_owned(),
            }
        }
        Some("pull-wake") => {
            let stream = text("wake_stream")?
                .ok_or_else(|| invalid("a pull-wake subscription needs wake_stream"))?;
            Delivery::PullWake {
                wake_stream: normalize_path(&stream)?,
            }
        }
        _ => return Err(invalid("type must be \"webhook\" or \"pull-wake\"")),
    };
    let pattern = text("pattern")?.map(|p| p.trim_matches('/').to_owned());
    let streams = parse_streams(body.get("streams"))?;
    if pattern.as_deref().is_none_or(str::is_empty) && streams.is_empty() {
        return Err(invalid("a subscription needs a pattern or streams"));
    }
    let lease_ttl_ms = match body.get("lease_ttl_ms") {
        None | Some(Value::Null) => DEFAULT_LEASE_MS,
        Some(v) => v
            .as_u64()
            .filter(|ms| (MIN_LEASE_MS..=MAX_LEASE_MS).contains(ms))
            .ok_or_else(|| invalid("lease_ttl_ms must be from 1000 to 600000"))?,
    };
    Ok(Spec {
        delivery,
        pattern,
        streams,
        lease_ttl_ms,
        description: text("description")?,
    })
}

/// A `streams` array: normalized, sorted, deduplicated paths (absent: none).
pub(crate) fn parse_streams(value: Option<&Value>) -> Result<Vec<String>, SubError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_LINKS => items,
        Some(_) => {
            return Err(invalid(format!(
                "streams must be an array of at most {MAX_LINKS} paths"
            )));
        }
    };
    let mut paths = items
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| invalid("streams must hold strings"))
        })
        .map(|p| p.and_then(normalize_path))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    paths.dedup();
    Ok(paths)
}

impl Subscription {
    /// Links `path` (glob or explicit) at `acked` unless it is linked already; `false` when the
    /// link bound is reached.
    pub(crate) fn link(&mut self, path: &str, explicit: bool, acked: Offset) -> bool {
        if let Some(link) = self.links.get_mut(path) {
            link.explicit |= explicit;
            link.glob |= !explicit;
            return true;
        }
        if self.links.len() >= MAX_LINKS {
            return false;
        }
        self.links.insert(
            path.to_owned(),
            Link {
                glob: !explicit,
                explicit,
                acked,
            },
        );
        true
    }

    /// Whether the pattern matches `path`.
    pub(crate) fn matches(&self, path: &str) -> bool {
        self.spec
            .pattern
            .as_deref()
            .is_some_and(|p| !p.is_empty() && glob_match(p, path))
    }

    /// Removes the explicit link to `path`; a glob link stays while the pattern matches.
    pub(crate) fn unlink_explicit(&mut self, path: &str) {
        let glob = self.matches(path);
        if let Some(link) = self.links.get_mut(path) {
            link.explicit = false;
            link.glob |= glob;
            if !link.glob {
                self.links.remove(path);
            }
        }
    }

    /// The first linked stream whose tail is past its cursor.
    pub(crate) fn first_pending(&self, tails: &Tails) -> Option<String> {
        self.links
            .iter()
            .find(|(path, link)| tails.get(*path).is_some_and(|t| *t > link.acked))
            .map(|(path, _)| path.clone())
    }

    /// Ends the wake whose lease has run out (§7.3); `true` when one did.
    pub(crate) fn expire_lease(&mut self, now_ms: i64) -> bool {
        let expired = self
            .wake
            .as_ref()
            .and_then(|w| w.lease_until_ms)
            .is_some_and(|until| until <= now_ms);
        if expired {
            self.wake = None;
        }
        expired
    }

    /// Issues a new wake when the subscription is idle and has pending work (§7); `true` when
    /// it did.
    pub(crate) fn maybe_wake(
        &mut self,
        tails: &Tails,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) -> bool {
        if self.wake.is_some() {
            return false;
        }
        let Some(trigger) = self.first_pending(tails) else {
            return false;
        };
        self.generation += 1;
        let snapshot = self
            .links
            .keys()
            .map(|p| (p.clone(), tails.get(p).copied().unwrap_or(Offset::ZERO)))
            .collect();
        let wake_id = format!("w_{}", super::signing::random_token(12));
        let webhook = matches!(self.spec.delivery, Delivery::Webhook { .. });
        self.wake = Some(Wake {
            id: wake_id.clone(),
            snapshot,
            holder: None,
            lease_until_ms: webhook.then(|| now_ms + self.spec.lease_ttl_ms as i64),
        });
        if webhook {
            effects.push(Effect::Deliver {
                wake_id: wake_id.clone(),
            });
            effects.push(Effect::LeaseCheck {
                wake_id,
                after_ms: self.spec.lease_ttl_ms,
            });
        } else {
            effects.push(Effect::WakeEvent {
                stream: trigger,
                generation: self.generation,
            });
        }
        true
    }

    /// (Re)starts the lease of the wake in flight.
    pub(crate) fn extend_lease(&mut self, now_ms: i64, effects: &mut Vec<Effect>) {
        let ttl = self.spec.lease_ttl_ms;
        if let Some(wake) = &mut self.wake {
            wake.lease_until_ms = Some(now_ms + ttl as i64);
            effects.push(Effect::LeaseCheck {
                wake_id: wake.id.clone(),
                after_ms: ttl,
            });
        }
    }

    /// The stream view of §7.1 / §7.2 (`tail_offset`, `has_pending`) at `tails`.
    pub(crate) fn stream_infos(&self, tails: &Tails) -> Vec<Value> {
        self.links
            .iter()
            .map(|(path, link)| {
                let tail = tails
                    .get(path)
                    .copied()
                    .unwrap_or(link.acked)
                    .max(link.acked);
                json!({
                    "path": path,
                    "link_type": link_type(link),
                    "acked_offset": link.acked.token(),
                    "tail_offset": tail.token(),
                    "has_pending": tail > link.acked,
                })
            })
            .collect()
    }

    /// `status` of §6.3.
    pub(crate) fn status(&self) -> &'static str {
        if self.retry_count > 0 {
            "failed"
        } else {
            "active"
        }
    }
}

/// `explicit` wins when a stream is linked both ways (§6.1).
pub(crate) fn link_type(link: &Link) -> &'static str {
    if link.explicit { "explicit" } else { "glob" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_segments() {
        assert!(glob_match("events/*", "events/a"));
        assert!(!glob_match("events/*", "events/a/b"));
        assert!(!glob_match("events/*", "events"));
        assert!(glob_match("events/**", "events"));
        assert!(glob_match("events/**", "events/a/b"));
        assert!(glob_match("**/x", "a/b/x"));
        assert!(!glob_match("events/*", "other/a"));
    }

    #[test]
    fn paths_are_normalized_and_reserved_ones_refused() {
        assert_eq!(normalize_path("/events/a/").unwrap(), "events/a");
        assert!(normalize_path("__ds/x").is_err());
        assert!(normalize_path("a//b").is_err());
        assert!(normalize_path("").is_err());
    }

    #[test]
    fn one_wake_at_a_time_and_a_lapsed_lease_wakes_again() {
        let spec = parse_spec(&json!({"type":"webhook","pattern":"e/*","webhook":{"url":"https://x"},"lease_ttl_ms":1000}), |_| Ok(())).unwrap();
        let mut sub = Subscription {
            id: "s".into(),
            hash: spec.hash(),
            spec,
            created_at: String::new(),
            base_url: String::new(),
            links: BTreeMap::new(),
            generation: 0,
            wake: None,
            retry_count: 0,
            next_attempt_at_ms: None,
        };
        let mut effects = Vec::new();
        assert!(sub.link("e/a", false, Offset(0)));
        let tails = Tails::from([("e/a".to_owned(), Offset(5))]);
        assert!(sub.maybe_wake(&tails, 0, &mut effects));
        assert!(
            !sub.maybe_wake(&tails, 10, &mut effects),
            "a wake is in flight"
        );
        assert_eq!(sub.generation, 1);
        assert!(matches!(&effects[0], Effect::Deliver { .. }));
        assert!(!sub.expire_lease(999));
        assert!(sub.expire_lease(1000));
        assert!(sub.maybe_wake(&tails, 1000, &mut effects));
        assert_eq!(sub.generation, 2);
        sub.wake = None;
        sub.links.get_mut("e/a").unwrap().acked = Offset(5);
        assert!(
            !sub.maybe_wake(&tails, 2000, &mut effects),
            "nothing pending"
        );
        sub.unlink_explicit("e/a");
        assert!(sub.links.contains_key("e/a"), "the glob link stays");
    }

    #[test]
    fn the_hash_changes_with_the_configuration() {
        let ok = |_: &str| Ok(());
        let a = parse_spec(
            &json!({"type":"webhook","pattern":"e/*","webhook":{"url":"https://x"}}),
            ok,
        )
        .unwrap();
        let b = parse_spec(&json!({"type":"webhook","pattern":"e/*","webhook":{"url":"https://x"},"description":"d"}), ok).unwrap();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.clone().hash());
        assert_eq!(a.lease_ttl_ms, DEFAULT_LEASE_MS);
        let bad = parse_spec(&json!({"type":"webhook","webhook":{"url":"https://x"}}), ok);
        assert_eq!(bad.unwrap_err().code, "INVALID_REQUEST");
    }
}
