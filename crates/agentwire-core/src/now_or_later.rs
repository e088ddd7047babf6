//! `NowOrLater`: a future that is either already complete or boxed, so one method can serve a
//! backend that answers at once (in memory) and one that waits (over the network).

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed, sendable future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of an operation that is either done already ([`Now`](Self::Now)) or has to wait
/// ([`Later`](Self::Later)). It is a future either way, so a caller that can wait just
/// `.await`s it; a caller on a hot path matches on it and takes a `Now` result without
/// awaiting, polling or allocating.
///
/// Like tower's `Either`, it puts "ready now or later" in a type instead of a second method. The
/// `Later` future owns what it needs (or borrows it for `'a`), and — like every Rust future —
/// does nothing until polled.
///
/// ```
/// use agentwire_core::NowOrLater;
///
/// fn double(x: u64, slow: bool) -> NowOrLater<'static, u64> {
///     if slow { NowOrLater::later(async move { x * 2 }) } else { NowOrLater::now(x * 2) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Without awaiting: a `Now` answer is there already.
/// assert_eq!(double(2, false).into_now().ok(), Some(4));
/// // Awaiting works for both.
/// assert_eq!(double(2, true).await, 4);
/// assert_eq!(double(3, false).await, 6);
/// # }
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub enum NowOrLater<'a, T> {
    /// Done: the value is here.
    Now(Ready<T>),
    /// Not done: await the future.
    Later(BoxFuture<'a, T>),
}

impl<'a, T> NowOrLater<'a, T> {
    /// A result that is already there.
    pub fn now(value: T) -> Self {
        NowOrLater::Now(std::future::ready(value))
    }

    /// A result `future` will produce (boxed here).
    pub fn later(future: impl Future<Output = T> + Send + 'a) -> Self {
        NowOrLater::Later(Box::pin(future))
    }

    /// The value when it is there already, or `self` back when it has to be awaited.
    ///
    /// # Errors
    /// `Err(self)` for a [`Later`](Self::Later).
    pub fn into_now(self) -> Result<T, Self> {
        match self {
            NowOrLater::Now(ready) => Ok(ready.into_inner()),
            later => Err(later),
        }
    }

    /// Applies `f` to the result: at once for `Now`, after the future for `Later`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'a) -> NowOrLater<'a, U>
    where
        T: 'a,
    {
        match self {
            NowOrLater::Now(ready) => NowOrLater::now(f(ready.into_inner())),
            NowOrLater::Later(future) => NowOrLater::later(async move { f(future.await) }),
        }
    }
}

impl<T> Future for NowOrLater<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            NowOrLater::Now(ready) => Pin::new(ready).poll(cx),
            NowOrLater::Later(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for NowOrLater<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NowOrLater::Now(ready) => f.debug_tuple("Now").field(ready).finish(),
            NowOrLater::Later(_) => f.write_str("Later(..)"),
        }
    }
}
