//! Who a run belongs to.

use crate::{RunId, ThreadId, UserId};

/// The identity a run is bound to: its user, thread, run and the client request that began it.
///
/// Every `RunEmitter` is made from one `UserContext` and can only publish to
/// `user_id`'s stream, so an agent cannot reach another user even by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserContext {
    /// The authenticated user.
    pub user_id: UserId,
    /// The conversation.
    pub thread_id: ThreadId,
    /// This run.
    pub run_id: RunId,
    /// The client's request id (the `user_message` `id`), for tracing.
    pub request_id: Option<String>,
}

impl UserContext {
    /// A context for a new run of `user_id`, in `thread_id` or a new thread.
    pub fn new_run(
        user_id: UserId,
        thread_id: Option<ThreadId>,
        request_id: Option<String>,
    ) -> Self {
        Self {
            user_id,
            thread_id: thread_id.unwrap_or_else(ThreadId::generate),
            run_id: RunId::generate(),
            request_id,
        }
    }
}
