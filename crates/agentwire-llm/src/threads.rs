//! Thread memory: the `ThreadStore` contract, its in-memory implementation, and the bounds every
//! implementation applies.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use agentwire_core::{ThreadId, UserId};
use async_trait::async_trait;
use parking_lot::Mutex;

use crate::MemoryConfig;
use crate::wire::ChatMessage;

/// Whose thread: one agent's conversation with one user in one thread. Another user's
/// `thread_id` is another key, so it starts empty and never reads this one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThreadKey {
    /// The agent's name.
    pub agent: String,
    /// The thread's owner.
    pub user: UserId,
    /// The thread.
    pub thread: ThreadId,
}

impl ThreadKey {
    /// A unique string for the key: each part is length-prefixed, so ids that contain the
    /// separator cannot collide (`a:b` + `c` vs `a` + `b:c`).
    pub fn storage_key(&self) -> String {
        let (a, u, t) = (&self.agent, self.user.as_str(), self.thread.as_str());
        format!("{}:{a}:{}:{u}:{}:{t}", a.len(), u.len(), t.len())
    }
}

/// One turn of a thread: the user's message and everything the agent said and did for it
/// (assistant messages, tool calls, tool results), in order.
pub type Turn = Vec<ChatMessage>;

/// Where an agent keeps the earlier turns of its threads.
///
/// # What an implementor must guarantee
/// - `load` returns the turns appended under exactly this key, oldest first — never another
///   key's, whatever the ids contain.
/// - It keeps at most `limits.max_turns` turns per key (the newest), and `load` returns the
///   newest turns whose JSON fits in `limits.max_bytes`.
/// - A key not appended to for `limits.ttl` is forgotten (loads as empty) and its memory freed
///   eventually.
/// - Both methods are cancel-safe; a failure is an `Err` with a readable message, never a panic.
///
/// ```
/// use agentwire_llm::{InMemoryThreadStore, MemoryConfig, ThreadKey, ThreadStore, ChatMessage};
/// use agentwire_core::{ThreadId, UserId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = InMemoryThreadStore::new(MemoryConfig::default());
/// let key = ThreadKey { agent: "assistant".into(), user: UserId::new("ada").unwrap(), thread: ThreadId::new("t1").unwrap() };
/// store.append(&key, vec![ChatMessage::User { content: "hi".into() }]).await.unwrap();
/// assert_eq!(store.load(&key).await.unwrap().len(), 1);
/// # }
/// ```
#[async_trait]
pub trait ThreadStore: Send + Sync + 'static {
    /// The thread's remembered turns, oldest first.
    ///
    /// # Errors
    /// The store cannot be read.
    async fn load(&self, key: &ThreadKey) -> Result<Vec<Turn>, String>;

    /// Adds a finished turn and refreshes the thread's TTL.
    ///
    /// # Errors
    /// The store cannot be written.
    async fn append(&self, key: &ThreadKey, turn: Turn) -> Result<(), String>;
}

/// The newest `turns` whose JSON fits in `max_bytes` (always keeping order).
pub(crate) fn newest_within(mut turns: Vec<(usize, Turn)>, max_bytes: usize) -> Vec<Turn> {
    let mut total = 0;
    let mut keep = turns.len();
    for (size, _) in turns.iter().rev() {
        if total + size > max_bytes {
            break;
        }
        total += size;
        keep -= 1;
    }
    turns.drain(keep..).map(|(_, t)| t).collect()
}

pub(crate) fn turn_bytes(turn: &Turn) -> usize {
    turn.iter().map(ChatMessage::json_len).sum()
}

#[derive(Debug)]
struct Thread {
    touched: Instant,
    turns: VecDeque<(usize, Turn)>,
}

/// Thread memory in this process: for one node, or when threads need not survive a restart.
#[derive(Debug)]
pub struct InMemoryThreadStore {
    limits: MemoryConfig,
    threads: Mutex<HashMap<ThreadKey, Thread>>,
}

impl InMemoryThreadStore {
    /// An empty store with these bounds.
    pub fn new(limits: MemoryConfig) -> Self {
        Self {
            limits,
            threads: Mutex::new(HashMap::new()),
        }
    }

    fn expired(&self, thread: &Thread, now: Instant) -> bool {
        now.duration_since(thread.touched) >= self.limits.ttl
    }
}

#[async_trait]
impl ThreadStore for InMemoryThreadStore {
    async fn load(&self, key: &ThreadKey) -> Result<Vec<Turn>, String> {
        let now = Instant::now();
        let mut threads = self.threads.lock();
        let Some(thread) = threads.get(key) else {
            return Ok(Vec::new());
        };
        if self.expired(thread, now) {
            threads.remove(key);
            return Ok(Vec::new());
        }
        let turns = thread.turns.iter().cloned().collect();
        Ok(newest_within(turns, self.limits.max_bytes))
    }

    async fn append(&self, key: &ThreadKey, turn: Turn) -> Result<(), String> {
        let now = Instant::now();
        let size = turn_bytes(&turn);
        let mut threads = self.threads.lock();
        // Expired threads go when the map has grown past a power of two: amortized O(1).
        if threads.len() >= 64 && threads.len().is_power_of_two() {
            threads.retain(|_, t| now.duration_since(t.touched) < self.limits.ttl);
        }
        let thread = threads.entry(key.clone()).or_insert_with(|| Thread {
            touched: now,
            turns: VecDeque::new(),
        });
        if self.expired(thread, now) {
            thread.turns.clear();
        }
        thread.touched = now;
        thread.turns.push_back((size, turn));
        while thread.turns.len() > self.limits.max_turns {
            thread.turns.pop_front();
        }
        // Turns past the byte bound would never be loaded again.
        let mut total: usize = thread.turns.iter().map(|(s, _)| s).sum();
        while total > self.limits.max_bytes && thread.turns.len() > 1 {
            if let Some((s, _)) = thread.turns.pop_front() {
                total -= s;
            }
        }
        Ok(())
    }
}

/// A TTL for Redis `PEXPIRE`, at least 1 ms.
#[cfg(feature = "redis")]
pub(crate) fn ttl_millis(ttl: std::time::Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(user: &str, thread: &str) -> ThreadKey {
        ThreadKey {
            agent: "a".into(),
            user: UserId::new(user).unwrap(),
            thread: ThreadId::new(thread).unwrap(),
        }
    }

    fn said(text: &str) -> Turn {
        vec![ChatMessage::User {
            content: text.into(),
        }]
    }

    #[tokio::test]
    async fn keeps_the_newest_turns_within_both_bounds() {
        let store = InMemoryThreadStore::new(MemoryConfig {
            max_turns: 3,
            max_bytes: 90,
            ttl: Duration::from_secs(60),
        });
        let k = key("ada", "t");
        for i in 0..5 {
            store.append(&k, said(&format!("turn {i}"))).await.unwrap();
        }
        let turns = store.load(&k).await.unwrap();
        // each turn is ~35 bytes: the byte bound keeps 2 of the 3 the turn bound keeps
        assert_eq!(turns, vec![said("turn 3"), said("turn 4")]);
    }

    #[tokio::test]
    async fn threads_of_other_users_and_colliding_ids_are_separate() {
        let store = InMemoryThreadStore::new(MemoryConfig::default());
        store
            .append(&key("ada", "t1"), said("secret"))
            .await
            .unwrap();
        assert!(store.load(&key("bob", "t1")).await.unwrap().is_empty());
        assert_ne!(key("a:b", "c").storage_key(), key("a", "b:c").storage_key());
    }

    #[tokio::test]
    async fn forgets_after_the_ttl() {
        let store = InMemoryThreadStore::new(MemoryConfig {
            ttl: Duration::from_millis(1),
            ..MemoryConfig::default()
        });
        let k = key("ada", "t");
        store.append(&k, said("x")).await.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.load(&k).await.unwrap().is_empty());
    }
}
