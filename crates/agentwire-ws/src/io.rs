//! The halves of an upgraded connection: tungstenite reads the client's frames from the read
//! half; the writer task encodes the server's frames into the write half itself
//! (tungstenite's `FrameHeader::format` plus the shared bytes), one buffer and one write per
//! batch, with no per-frame buffering and no lock shared with the reader. What tungstenite
//! itself writes while it
//! reads — the pongs it answers pings with — goes to the writer through [`ControlBytes`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection, before it is split.
pub(crate) type Io = TokioIo<hyper::upgrade::Upgraded>;

/// The read side of an upgraded connection, as tungstenite reads it.
pub(crate) type Socket = WebSocketStream<ReadSide>;

/// The write side: only the writer task writes to it, encoding server frames itself, one buffer
/// and one write per batch.
pub(crate) type WriteSide = tokio::io::WriteHalf<Io>;

/// The most control bytes (pongs) a connection may owe its client; a client that keeps pinging
/// while it does not read gets its connection closed instead of growing this.
const MAX_CONTROL_BYTES: usize = 16 * 1024;

/// Bytes tungstenite writes while it reads (the pongs it answers pings with), handed to the
/// writer task, which sends them between its frames.
#[derive(Default)]
pub(crate) struct ControlBytes {
    bytes: std::sync::Mutex<Vec<u8>>,
    /// Whether `bytes` may be non-empty: the writer polls this on every wakeup, and almost never
    /// finds pongs, so it reads an atomic instead of taking the lock.
    pending: AtomicBool,
    writer: AtomicWaker,
}

impl ControlBytes {
    fn push(&self, buf: &[u8]) -> std::io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if bytes.len() + buf.len() > MAX_CONTROL_BYTES {
            return Err(std::io::Error::other(
                "the client sends pings faster than it reads the pongs",
            ));
        }
        bytes.extend_from_slice(buf);
        self.pending.store(true, Ordering::Release);
        self.writer.wake();
        Ok(())
    }

    /// Moves the pending control bytes to the end of `out`; `Pending` (the writer is woken
    /// later) when there are none.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<()> {
        self.writer.register(cx.waker());
        if !self.pending.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        out.append(&mut self.bytes.lock().unwrap_or_else(|e| e.into_inner()));
        Poll::Ready(())
    }
}

/// What tungstenite reads from and writes to: the socket's read half, and the writer's
/// control-byte queue instead of its write half.
pub(crate) struct ReadSide {
    read: tokio::io::ReadHalf<Io>,
    control: Arc<ControlBytes>,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.control.push(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An upgraded connection: tungstenite's read side, and what the writer task writes to.
pub(crate) struct Halves {
    pub(crate) read: Socket,
    pub(crate) write: WriteSide,
    pub(crate) control: Arc<ControlBytes>,
}

impl Halves {
    /// Splits an upgraded connection; tungstenite reads with `config`.
    pub(crate) async fn new(io: Io, config: WebSocketConfig) -> Self {
        let (read, write) = tokio::io::split(io);
        let control = Arc::new(ControlBytes::default());
        let read = ReadSide {
            read,
            control: control.clone(),
        };
        Self {
            read: WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await,
            write,
            control,
        }
    }
}
