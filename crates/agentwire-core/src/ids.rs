//! Identifiers. Each is a cheap-to-clone `Arc<str>` newtype so that one event can carry its ids to
//! many connections without copying strings.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Longest accepted id, in bytes. Ids travel in every frame; keep them short.
pub const MAX_ID_LEN: usize = 128;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        // By hand: `#[serde(into = "String")]` would copy the id into a new String every time
        // an event is serialized.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl $name {
            /// Validates and wraps `value`: 1 to 128 bytes of `[A-Za-z0-9_.:@-]`.
            ///
            /// # Errors
            /// [`CoreError::InvalidId`] when `value` is empty, too long or has another character.
            pub fn new(value: impl Into<String>) -> Result<Self, CoreError> {
                let value = value.into();
                validate_id($what, &value)?;
                Ok(Self(value.into()))
            }

            /// A fresh random id with this kind's prefix (e.g. `r_` for runs).
            pub fn generate() -> Self {
                Self(random_id($prefix))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The user a stream belongs to (the JWT `sub`, or the dev-auth `user`).
    ///
    /// Ids starting with `__` are reserved for agentwire's own synthetic users (the health
    /// check's round trip); authentication refuses them.
    UserId,
    "user id",
    "u_"
);
string_id!(
    /// One execution of one agent for one user.
    RunId,
    "run id",
    "r_"
);
string_id!(
    /// A conversation; runs of the same thread share it.
    ThreadId,
    "thread id",
    "t_"
);

impl UserId {
    /// Whether the id is reserved for agentwire's internal users (starts with `__`).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("__")
    }
}

/// A server-assigned id for one WebSocket or SSE connection; unique within the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The next id of this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({})", self.0)
    }
}

fn validate_id(what: &'static str, value: &str) -> Result<(), CoreError> {
    // `|` is in identity providers' subjects (Auth0: `auth0|64b…`, `google-oauth2|10…`).
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@' | '|');
    if value.is_empty() || value.len() > MAX_ID_LEN || !value.chars().all(ok_char) {
        return Err(CoreError::InvalidId {
            what,
            value: value.chars().take(40).collect(),
        });
    }
    Ok(())
}

/// 128 bits as 26 base-32 characters behind `prefix`: a per-process counter mixed with a
/// per-process random seed (drawn once from the OS through `RandomState`) by splitmix64, a
/// bijection — so ids never repeat within a process and differ across processes. Ids name runs
/// and threads; they are not secrets (every use checks ownership), so a hash per id (two SipHash
/// rounds and a clock read, as before) bought nothing on the per-run path.
pub(crate) fn random_id(prefix: &str) -> Arc<str> {
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = *SEED.get_or_init(|| {
        let state = RandomState::new();
        (
            state.hash_one(0x9e37_79b9_u64),
            state.hash_one(0x85eb_ca6b_u64),
        )
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bits = (u128::from(splitmix64(n ^ a)) << 64) | u128::from(splitmix64(n ^ b));
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    // Built on the stack: one allocation, the Arc's own.
    let mut buf = [0u8; 8 + 26];
    let prefix = &prefix.as_bytes()[..prefix.len().min(8)];
    buf[..prefix.len()].copy_from_slice(prefix);
    for c in &mut buf[prefix.len()..prefix.len() + 26] {
        *c = ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    let id = std::str::from_utf8(&buf[..prefix.len() + 26]).expect("ASCII prefix and alphabet");
    Arc::from(id)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate_their_characters() {
        assert!(UserId::new("alice").is_ok());
        assert!(UserId::new("alice@example.com").is_ok());
        assert!(UserId::new("auth0|64b0c0ffee").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a b").is_err());
        assert!(UserId::new("x".repeat(129)).is_err());
        assert!(UserId::new("__health").unwrap().is_reserved());
    }

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("r_"));
        assert!(RunId::new(a.as_str()).is_ok());
    }

    #[test]
    fn ids_round_trip_through_serde() {
        let id: ThreadId = serde_json::from_str("\"t_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"t_1\"");
        assert!(serde_json::from_str::<ThreadId>("\"bad id\"").is_err());
    }
}
