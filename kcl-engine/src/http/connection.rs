//! A new connection's first bytes: read within a deadline to tell HTTP/1.1 from HTTP/2, then
//! handed back to hyper ahead of the rest.
//!
//! hyper reads them itself without a deadline, before its header timeout starts, so a client
//! that connects and sends nothing (or part of the HTTP/2 preface) would hold its connection
//! for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What an HTTP/2 client with prior knowledge sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose first bytes were read already: reads return them first.
#[derive(Debug)]
pub(crate) struct StartedConnection {
    start: Vec<u8>,
    returned: usize,
    stream: TcpStream,
}

impl StartedConnection {
    /// Reads until the bytes tell the protocol (the whole HTTP/2 preface, or bytes that differ
    /// from it); `None` if the client closed first. Reads nothing past the preface.
    pub(crate) async fn read_start(mut stream: TcpStream) -> io::Result<Option<Self>> {
        let mut start = Vec::with_capacity(PREFACE.len());
        let mut buffer = [0u8; PREFACE.len()];
        loop {
            let wanted = PREFACE.len() - start.len();
            let read = stream.read(&mut buffer[..wanted]).await?;
            if read == 0 {
                return Ok(None);
            }
            start.extend_from_slice(&buffer[..read]);
            if start.len() == PREFACE.len() || start[..] != PREFACE[..start.len()] {
                return Ok(Some(StartedConnection {
                    start,
                    returned: 0,
                    stream,
                }));
            }
        }
    }
}

impl AsyncRead for StartedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.returned < this.start.len() {
            let rest = &this.start[this.returned..];
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            this.returned += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StartedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    async fn started_by(sent: &'static [u8], close: bool) -> Option<Vec<u8>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.ok()?;
        let addr = listener.local_addr().ok()?;
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(sent).await.ok()?;
            if close {
                stream.shutdown().await.ok()?;
            }
            // Keeps the connection open until the server side is done.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.ok()?;
            Some(())
        });
        let (stream, _) = listener.accept().await.ok()?;
        let started = StartedConnection::read_start(stream).await.ok()??;
        let mut everything = Vec::new();
        let mut connection = started;
        if close {
            connection.read_to_end(&mut everything).await.ok()?;
        } else {
            let mut buffer = vec![0u8; sent.len()];
            connection.read_exact(&mut buffer).await.ok()?;
            everything = buffer;
        }
        drop(connection);
        let _ = client.await;
        Some(everything)
    }

    #[tokio::test]
    async fn the_first_bytes_are_read_again() {
        let http1 = b"POST / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(started_by(http1, false).await.as_deref(), Some(&http1[..]));
        let http2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00";
        assert_eq!(started_by(http2, false).await.as_deref(), Some(&http2[..]));
    }

    #[tokio::test]
    async fn a_client_that_closes_within_the_preface_is_let_go() {
        assert_eq!(started_by(b"PRI * HTTP", true).await, None);
        assert_eq!(started_by(b"", true).await, None);
    }
}
