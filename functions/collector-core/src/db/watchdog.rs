//! The socket under every TCP connection: it fails the connection when the server has
//! sent nothing for `limit` after we sent it something.
//!
//! A frozen server (SIGSTOP, a hung host behind a live kernel) keeps its TCP stack
//! answering: keep-alive probes and our data are ACKed, so neither TCP keep-alive nor
//! `TCP_USER_TIMEOUT` notices, and a tokio-postgres request would wait for ever. With
//! `statement_timeout` set, a healthy server answers every request within that time
//! (with a result, or SQLSTATE 57014), so silence well beyond it means the server is
//! gone. The watchdog then ends the connection task with an I/O error: every waiting
//! call gets "connection closed", `Client::is_closed()` turns true and the next
//! `AppContext::db()` connects afresh.
//!
//! It only watches while a request is unanswered (bytes written, nothing read since): an
//! idle connection is never ended. A server that froze half-way through sending a large
//! result is caught by [`super::DbFutureExt::bounded`], not here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct Watched<S> {
    inner: S,
    limit: Duration,
    /// When the oldest unanswered write went out.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Watched {
            inner,
            limit,
            waiting_since: None,
            timer: None,
        }
    }
}

/// The watchdog's error; its text ends in the connection task's log line and in
/// `Db::closed_reason`.
pub(crate) fn stalled(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "PostgreSQL sent nothing for {} s after a request (DATABASE_STATEMENT_TIMEOUT_SECS + 5 s); \
             the server is frozen or unreachable, closing the connection",
            limit.as_secs_f64().round()
        ),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.waiting_since = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(since) = this.waiting_since else {
                    return Poll::Pending;
                };
                let deadline = since + this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(stalled(this.limit))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S> Watched<S> {
    fn wrote(&mut self, n: usize, cx: &mut Context<'_>) {
        if n > 0 && self.waiting_since.is_none() {
            self.waiting_since = Some(Instant::now());
            // The connection task polled its read side before writing: have it poll
            // again so the read side arms the timer.
            cx.waker().wake_by_ref();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let out = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = out {
            self.wrote(n, cx);
        }
        out
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let out = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = out {
            self.wrote(n, cx);
        }
        out
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn silence_after_a_request_is_an_error_and_idleness_is_not() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut watched = Watched::new(client, Duration::from_millis(200));
        let mut buf = [0u8; 16];
        // Idle: nothing sent, nothing expected — no error however long it lasts.
        let idle = tokio::time::timeout(Duration::from_millis(400), watched.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle connection must not be ended");
        // A request answered: fine.
        watched.write_all(b"ping").await.unwrap();
        server.read_exact(&mut buf[..4]).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 4);
        // A request never answered: the read fails once the limit has passed.
        watched.write_all(b"ping").await.unwrap();
        let err = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("sent nothing"), "{err}");
    }
}
