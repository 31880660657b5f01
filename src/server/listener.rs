//! The listener's guard against clients that hold connections: at most `webhook.max_connections`
//! served at once (the rest wait in the kernel's backlog, costing no descriptor of ours), and a
//! connection on which nothing moves for `webhook.idle_timeout_secs` — an idle keep-alive, a
//! request whose headers or body stopped half-way — is closed; so is one whose request has not
//! been answered within the idle timeout plus [`BODY_TIME`] of its first byte (a client trickling
//! one byte at a time is never idle, only slow), and any connection older than [`MAX_LIFETIME`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The longest a connection is kept, however busy.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Beyond the idle timeout, how long a request may take from its first byte to its answer: the
/// time a webhook's body may take to arrive once its headers have (answered 408 past it).
pub const BODY_TIME: Duration = Duration::from_secs(10);

/// A TCP listener handing out at most `max` connections at a time, each watched for idleness.
pub struct Guarded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle: Duration,
}

impl Guarded {
    pub fn new(inner: TcpListener, max: usize, idle: Duration) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
            idle,
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting: past the cap, clients queue in the backlog.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        // axum's own accept loop: transient errors (EMFILE, aborted handshakes) are waited out.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (GuardedIo::new(stream, permit, self.idle), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One served connection: its slot is freed when it is dropped.
pub struct GuardedIo {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    end_of_life: Pin<Box<Sleep>>,
    /// When the request being read began (its first byte since the last answer was written).
    request_began: Option<Instant>,
}

impl GuardedIo {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            stream,
            _permit: permit,
            idle,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            end_of_life: Box::pin(tokio::time::sleep_until(now + MAX_LIFETIME)),
            request_began: None,
        }
    }

    /// Whether the request being read has taken longer than a request may.
    fn request_overdue(&self) -> bool {
        self.request_began
            .is_some_and(|at| at.elapsed() > self.idle + BODY_TIME)
    }

    fn touched(&mut self) {
        let at = Instant::now() + self.idle;
        self.idle_timer.as_mut().reset(at);
    }

    /// An error once the connection has been idle or alive too long (registers the wake-ups).
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.end_of_life.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(io::ErrorKind::TimedOut, "connection open too long"));
        }
        if self.idle_timer.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
        }
        None
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touched();
                    this.request_began.get_or_insert_with(Instant::now);
                    if this.request_overdue() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request not complete in time",
                        )));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touched();
                    // Answering: the next byte read begins the next request.
                    this.request_began = None;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A client that stops reading its answer holds the connection like one that stops
            // sending.
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
