//! Connections joining a user's stream: attach, resume, detach.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use agentwire_core::{ConnectionId, Resumed, UserId, WebSocketSink};
use parking_lot::Mutex;

use super::{AgentWebSocketBridge, Attachment};
use crate::replay::replay;
use crate::stream::{LocalUser, ReplayEnd, Slot, SlotState, finish_replay};
use crate::{BridgeError, ReadLimit, ResumeFrom, StreamSlice};

/// Where a connection resumes in its stream, worked out from the client's position and the
/// stream's epoch, head and gap.
#[derive(Debug, Clone, Copy)]
struct ResumePoint {
    /// The seq after which the connection replays (0 when the client's epoch is not the
    /// stream's: its position belongs to a reset stream).
    after: u64,
    /// Whether the client's epoch is the stream's (or the client gave none).
    same_epoch: bool,
    /// What the client is told.
    resumed: Resumed,
}

/// The resume point of `from` in `slice`.
///
/// # Errors
/// [`BridgeError::ResumeAhead`] when the client holds seqs past the stream head.
fn resume_point(from: &ResumeFrom, slice: &StreamSlice) -> Result<ResumePoint, BridgeError> {
    let same_epoch = from.epoch.as_deref().is_none_or(|e| e == &*slice.epoch);
    let after = if same_epoch { from.last_seq } else { 0 };
    if after > slice.head {
        return Err(BridgeError::ResumeAhead {
            last_seq: after,
            head: slice.head,
        });
    }
    let first_held = slice.gap.map_or(after, |g| g.to_seq);
    Ok(ResumePoint {
        after,
        same_epoch,
        resumed: Resumed {
            from_seq: after + 1,
            replayed: slice.head - first_held.max(after),
        },
    })
}

impl AgentWebSocketBridge {
    fn local_user(&self, user: &UserId) -> Result<Arc<Mutex<LocalUser>>, BridgeError> {
        if let Some(h) = self.inner.users.get(user) {
            return Ok(h.clone());
        }
        if self.inner.users.len() >= self.inner.config.max_users && !user.is_reserved() {
            return Err(BridgeError::TooManyUsers {
                max: self.inner.config.max_users,
            });
        }
        Ok(self.inner.users.entry(user.clone()).or_default().clone())
    }

    /// Attaches a connection of `user`. Without `resume` it starts live at the stream head.
    /// With `resume`, the events after it are replayed first (a `replay_gap` frame before them
    /// when history lost some), paced by the client, then live events follow with no hole and no
    /// duplicate.
    ///
    /// # Errors
    /// [`BridgeError::TooManyConnections`], [`BridgeError::TooManyUsers`],
    /// [`BridgeError::ResumeAhead`], [`BridgeError::ShuttingDown`],
    /// [`BridgeError::BrokerUnavailable`]. Nothing stays attached on error.
    pub async fn attach(
        &self,
        user: &UserId,
        sink: Arc<dyn WebSocketSink>,
        resume: Option<ResumeFrom>,
    ) -> Result<Attachment, BridgeError> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(BridgeError::ShuttingDown);
        }
        let id = ConnectionId::next();
        // Register first (buffering live frames), then subscribe, then read the head: every
        // event is then either at or below the head (history) or in the buffer (live).
        self.register_slot(user, id, sink)?;
        let slice = match self.subscribe_and_read(user, resume.as_ref()).await {
            Ok(slice) => slice,
            Err(e) => {
                self.remove_slot(user, id);
                return Err(e);
            }
        };
        let point = match resume.as_ref().map(|r| resume_point(r, &slice)).transpose() {
            Ok(point) => point,
            Err(ahead) => {
                self.detach(user, id).await;
                return Err(ahead);
            }
        };
        let Some(needs_replay) = self.start_slot(user, id, &slice, point) else {
            // Closed while attaching.
            self.detach(user, id).await;
            return Err(BridgeError::NotAttached);
        };
        if needs_replay || point.is_some() {
            tokio::spawn(replay(self.inner.clone(), user.clone(), id));
        }
        Ok(Attachment {
            connection_id: id,
            epoch: slice.epoch.to_string(),
            last_seq: slice.head,
            resumed: point.map(|p| p.resumed),
        })
    }

    /// Adds a replaying slot (its live frames buffered) for connection `id` of `user`.
    fn register_slot(
        &self,
        user: &UserId,
        id: ConnectionId,
        sink: Arc<dyn WebSocketSink>,
    ) -> Result<(), BridgeError> {
        let max = self.inner.config.max_connections_per_user;
        loop {
            let handle = self.local_user(user)?;
            let mut local = handle.lock();
            if local.retired {
                continue; // removed meanwhile: take the user's new entry
            }
            if local.slots.iter().filter(|s| !s.closing).count() >= max {
                return Err(BridgeError::TooManyConnections { max });
            }
            local.slots.push(Slot {
                id,
                sink,
                epoch: "".into(),
                cursor: 0,
                delivered_any: false,
                state: SlotState::Replaying {
                    buffer: Vec::new(),
                    overflowed: false,
                },
                closing: false,
            });
            self.inner.connections.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }

    /// Subscribes this node to `user`'s live events and reads the stream's epoch and head (and
    /// the gap after the resume point). On a failed read the subscription is undone.
    async fn subscribe_and_read(
        &self,
        user: &UserId,
        resume: Option<&ResumeFrom>,
    ) -> Result<StreamSlice, BridgeError> {
        self.inner.broker.subscribe(user).await?;
        let epoch = resume.and_then(|r| r.epoch.as_deref());
        let after = resume.map_or(0, |r| r.last_seq);
        self.inner
            .broker
            .read_after(user, after, epoch, ReadLimit::events(0))
            .await
            .inspect_err(|_| {
                let broker = self.inner.broker.clone();
                let user = user.clone();
                tokio::spawn(async move { broker.unsubscribe(&user).await });
            })
    }

    /// Sets the slot's epoch and cursor from `slice`: at the resume point, or live at the head.
    /// Returns whether it must replay, or `None` when the slot is gone (closed meanwhile).
    fn start_slot(
        &self,
        user: &UserId,
        id: ConnectionId,
        slice: &StreamSlice,
        point: Option<ResumePoint>,
    ) -> Option<bool> {
        let handle = self.inner.users.get(user).map(|h| h.clone())?;
        let mut local = handle.lock();
        let slot = local.slots.iter_mut().find(|s| s.id == id)?;
        slot.epoch = slice.epoch.clone();
        match point {
            Some(point) => {
                slot.cursor = point.after;
                Some(point.after < slice.head)
            }
            None => {
                slot.cursor = slice.head;
                match finish_replay(slot) {
                    ReplayEnd::Live => Some(false),
                    ReplayEnd::ReadAgain => Some(true),
                    ReplayEnd::Dropped => None,
                }
            }
        }
    }

    /// As [`Self::attach`], but a resume point ahead of the stream head (a client holding seqs
    /// of a stream this broker no longer has) starts the connection live instead of failing; the
    /// refusal is returned next to the attachment so the transport can tell the client.
    ///
    /// # Errors
    /// As [`Self::attach`], except [`BridgeError::ResumeAhead`].
    pub async fn attach_or_live(
        &self,
        user: &UserId,
        sink: Arc<dyn WebSocketSink>,
        resume: Option<ResumeFrom>,
    ) -> Result<(Attachment, Option<BridgeError>), BridgeError> {
        match self.attach(user, sink.clone(), resume).await {
            Err(ahead @ BridgeError::ResumeAhead { .. }) => {
                Ok((self.attach(user, sink, None).await?, Some(ahead)))
            }
            other => other.map(|a| (a, None)),
        }
    }

    /// Removes a slot without touching the broker subscription; returns whether it was there.
    pub(super) fn remove_slot(&self, user: &UserId, id: ConnectionId) -> bool {
        let Some(handle) = self.inner.users.get(user).map(|h| h.clone()) else {
            return false;
        };
        let mut local = handle.lock();
        let before = local.slots.len();
        local.slots.retain(|s| s.id != id);
        let removed = before != local.slots.len();
        if removed {
            self.inner.connections.fetch_sub(1, Ordering::Relaxed);
        }
        if local.slots.is_empty() {
            local.retired = true;
            drop(local);
            self.inner
                .users
                .remove_if(user, |_, h| Arc::ptr_eq(h, &handle));
        }
        removed
    }

    /// Handles a `resume` frame on an attached connection: replays what the connection has not
    /// delivered after `from`. Earlier events than the connection already delivered cannot be
    /// replayed in order on it; the client must reconnect with `?last_seq=` for those.
    ///
    /// # Errors
    /// [`BridgeError::NotAttached`], [`BridgeError::ResumeAhead`],
    /// [`BridgeError::ResumeAfterDelivery`], [`BridgeError::BrokerUnavailable`].
    pub async fn resume(
        &self,
        user: &UserId,
        connection: ConnectionId,
        from: &ResumeFrom,
    ) -> Result<Resumed, BridgeError> {
        let slice = self
            .inner
            .broker
            .read_after(
                user,
                from.last_seq,
                from.epoch.as_deref(),
                ReadLimit::events(0),
            )
            .await?;
        let point = resume_point(from, &slice)?;
        let handle = self
            .inner
            .users
            .get(user)
            .map(|h| h.clone())
            .ok_or(BridgeError::NotAttached)?;
        {
            let mut local = handle.lock();
            let slot = local
                .slots
                .iter_mut()
                .find(|c| c.id == connection)
                .ok_or(BridgeError::NotAttached)?;
            if slot.delivered_any {
                if !point.same_epoch || point.after < slot.cursor {
                    return Err(BridgeError::ResumeAfterDelivery {
                        last_seq: from.last_seq,
                        delivered: slot.cursor,
                    });
                }
                return Ok(Resumed {
                    from_seq: point.after + 1,
                    replayed: 0,
                });
            }
            slot.cursor = point.after;
            slot.epoch = slice.epoch.clone();
            slot.state = SlotState::Replaying {
                buffer: Vec::new(),
                overflowed: false,
            };
        }
        tokio::spawn(replay(self.inner.clone(), user.clone(), connection));
        Ok(point.resumed)
    }

    /// Detaches a connection and ends its broker subscription. Call it exactly once per
    /// successful [`attach`](Self::attach), when the connection ends. The stream and its
    /// history stay for a later resume.
    pub async fn detach(&self, user: &UserId, connection: ConnectionId) {
        self.remove_slot(user, connection);
        self.inner.broker.unsubscribe(user).await;
    }
}
