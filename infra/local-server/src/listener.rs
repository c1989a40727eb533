//! The local server's listener: accepts connections and serves them with hyper, within
//! limits that keep one slow or greedy client from taking the server down (issue 17):
//! - a connection limit: past it, new connections wait in the kernel's backlog instead of
//!   each taking a file descriptor;
//! - a header read timeout (hyper's, driven by tokio's timer) and a body read timeout: a
//!   client that trickles a request is cut off;
//! - a write timeout: a client that stops reading its answers (its receive window full, so
//!   our writes wait forever) is cut off once a write has made no progress for that long;
//! - backoff when accepting fails (out of file descriptors, for example): the loop sleeps,
//!   doubling up to a second, and logs the first failure and the recovery, not every try.
//!   Without it a failing `accept` returns at once and the loop spins, logging each time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// What one connection and one request may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to receive a request's headers (also an idle keep-alive connection's wait).
    pub header_read_timeout: Duration,
    /// Time to receive a request's whole body.
    pub body_read_timeout: Duration,
    /// Time a write to the client may wait without progress.
    pub write_timeout: Duration,
    /// Largest body read.
    pub max_body_bytes: usize,
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    TimedOut,
    /// The connection failed while the body was read.
    Broken,
}

/// Reads a whole request body within the limits.
pub async fn read_body(body: Incoming, limits: &Limits) -> Result<Bytes, BodyError> {
    let collect = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.body_read_timeout, collect).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// The delay after accept failures: doubles from 5 ms up to a second, reset by a success.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failure; returns how long to wait before accepting again, and whether this
    /// failure is the first of a run (the one to log).
    pub fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        let delay = Self::FIRST
            .saturating_mul(1u32 << (self.failures - 1).min(20))
            .min(Self::MAX);
        (delay, self.failures == 1)
    }

    /// Records a success; returns how many failures the run that ended had.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }
}

/// Where connections come from: a [`TcpListener`]; a test wraps one to count the attempts.
pub trait Accept: Send + Sync + 'static {
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// Serves `listener` until `stop` changes, answering each request with `handle`.
pub async fn serve<A, H, F>(listener: A, limits: Limits, handle: H, mut stop: watch::Receiver<bool>)
where
    A: Accept,
    H: Fn(hyper::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<http_body_util::Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        // A free place first: at the limit, connections wait in the backlog, unaccepted.
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let accepted: io::Result<(TcpStream, SocketAddr)> = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(s) => {
                let failed = backoff.succeeded();
                if failed > 0 {
                    tracing::warn!(failed, "accepting connections again");
                }
                s
            }
            Err(e) => {
                drop(permit);
                let (delay, first) = backoff.failed();
                if first {
                    tracing::warn!(error = %e, "accept failed; backing off");
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let handle = handle.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(
                    TokioIo::new(WriteTimeout::new(stream, limits.write_timeout)),
                    service,
                )
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// A connection whose writes must make progress: once a write (or flush, or shutdown) has
/// waited `timeout` without the client taking a byte, it fails with `TimedOut` and hyper
/// drops the connection. Hyper's own timeouts cover reading only, so without this a client
/// that sends requests and never reads the answers holds its connection (and its place
/// under the connection limit) forever. The timer exists only while a write waits.
pub struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            waiting: None,
        }
    }

    /// After the inner write answered `poll`: progress resets the clock, waiting runs it.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let timeout = self.timeout;
        let sleep = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of the answer within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_accepts_back_off_to_a_second_and_log_once_per_run() {
        let mut b = AcceptBackoff::default();
        let runs: Vec<(Duration, bool)> = (0..12).map(|_| b.failed()).collect();
        assert_eq!(runs[0], (Duration::from_millis(5), true));
        assert_eq!(runs[1], (Duration::from_millis(10), false));
        assert_eq!(runs[7].0, Duration::from_millis(640));
        assert!(runs[8..]
            .iter()
            .all(|r| r == &(Duration::from_secs(1), false)));
        // A thousand failures in a row cost at least 990 s of waiting, not a busy loop.
        let waited: Duration = (0..1000).map(|_| b.failed().0).sum();
        assert!(waited >= Duration::from_secs(990));
        assert_eq!(b.succeeded(), 1012);
        assert_eq!(b.failed(), (Duration::from_millis(5), true), "a new run");
    }
}
