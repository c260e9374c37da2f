//! A TCP proxy that can black-hole its connections: point one worker process's lease store at
//! it, and the worker's PostgreSQL connection can be made to hang, the way a network partition
//! or a dead firewall state table hangs it, then heal.
//!
//! While black-holed, nothing passes in either direction: bytes are neither forwarded nor
//! refused, and no connection is closed or reset, so the client's calls simply get no answer.
//! New connections are accepted (by the kernel's backlog, as a SYN is answered before anyone
//! reads) but not connected onward until the hole heals. Once healed, everything held back flows
//! again in order, as TCP retransmission delivers it after a partition ends.
//!
//! One difference from a real partition: the proxy's kernel still acknowledges what it receives,
//! so a client relying on TCP keepalive or `TCP_USER_TIMEOUT` would not notice the hole; a
//! client that bounds its own calls (what the lease store must do) does.
//!
//! The proxy runs on a thread and runtime of its own, so a test that blocks its own runtime
//! (reading logs, say) never delays the store traffic it carries.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread::JoinHandle;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// A proxy from a local port to `upstream`.
pub struct BlackHoleProxy {
    address: SocketAddr,
    /// `true` while forwarding, `false` while black-holed.
    open: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHoleProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`
    /// (`host:port`).
    pub fn start(upstream: &str) -> io::Result<BlackHoleProxy> {
        let listener = StdTcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (open, gate) = watch::channel(true);
        let (stop, stopped) = oneshot::channel();
        let upstream = upstream.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("proxy {address}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::select! {
                                () = accept(listener, upstream, gate) => {}
                                _ = stopped => {}
                            }
                        }
                        Err(error) => eprintln!("proxy {address}: {error}"),
                    }
                });
                // Dropping the runtime here drops every connection still open.
            })?;
        Ok(BlackHoleProxy {
            address,
            open,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops forwarding: every connection hangs until [`heal`](Self::heal).
    pub fn black_hole(&self) {
        self.open.send_replace(false);
    }

    /// Forwards again, what was held back first.
    pub fn heal(&self) {
        self.open.send_replace(true);
    }

    /// True while black-holed.
    pub fn is_black_holed(&self) -> bool {
        !*self.open.borrow()
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until the proxy stops; each is relayed on a task of its own, dropped
/// with the proxy.
async fn accept(listener: TcpListener, upstream: String, gate: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(relay(client, upstream.clone(), gate.clone()));
                }
                Err(error) => eprintln!("proxy: accept failed: {error}"),
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Relays one connection both ways once the gate is open.
async fn relay(client: TcpStream, upstream: String, mut gate: watch::Receiver<bool>) {
    wait_open(&mut gate).await;
    let server = match TcpStream::connect(&upstream).await {
        Ok(server) => server,
        // Closing the client is what refusing it would look like to the client.
        Err(_) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, gate.clone()),
        pump(server_read, client_write, gate),
    );
}

/// Copies `from` to `to` while the gate is open; an end of stream (or an error) reading is
/// passed on as an end of stream writing, so the peer closes its side and the other direction
/// ends too. What was read when the gate closed is held, not dropped.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut gate: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        wait_open(&mut gate).await;
        let read = from.read(&mut buffer).await;
        wait_open(&mut gate).await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn wait_open(gate: &mut watch::Receiver<bool>) {
    // The sender lives as long as the runtime this runs on, so an error cannot happen while
    // anything waits here; if it did, forwarding is the harmless choice.
    let _ = gate.wait_for(|open| *open).await;
}

/// `url` (`postgres://user@host:port/db?...`) with its host and port replaced by `address`;
/// also returns the `host:port` it named (port 5432 if none), for the proxy's upstream.
pub fn url_through(url: &str, address: SocketAddr) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, authority),
    };
    if host_port.is_empty() || host_port.starts_with('[') {
        return None;
    }
    let upstream = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let user = user.map_or_else(String::new, |user| format!("{user}@"));
    Some((format!("{scheme}://{user}{address}{path}"), upstream))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdTcpStream;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_url_is_pointed_at_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            url_through("postgres://postgres@127.0.0.1:5432/test", proxy),
            Some((
                "postgres://postgres@127.0.0.1:4000/test".to_owned(),
                "127.0.0.1:5432".to_owned()
            ))
        );
        assert_eq!(
            url_through("postgresql://u:p@db?sslmode=disable", proxy),
            Some((
                "postgresql://u:p@127.0.0.1:4000?sslmode=disable".to_owned(),
                "db:5432".to_owned()
            ))
        );
        assert_eq!(url_through("no url", proxy), None);
    }

    /// An echo server on a thread; returns its address.
    fn echo_server() -> SocketAddr {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    fn exchange(stream: &mut StdTcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn a_black_hole_holds_bytes_without_closing_and_healing_delivers_them() {
        let proxy = BlackHoleProxy::start(&echo_server().to_string()).unwrap();
        let mut stream = StdTcpStream::connect(proxy.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(exchange(&mut stream, b"one").unwrap(), b"one");

        proxy.black_hole();
        assert!(proxy.is_black_holed());
        let error = exchange(&mut stream, b"two").unwrap_err();
        // No answer and no reset: the read timed out.
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{error:?}"
        );
        // A new connection is accepted but gets nothing either.
        let mut late = StdTcpStream::connect(proxy.address()).unwrap();
        late.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(exchange(&mut late, b"three").is_err());

        proxy.heal();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        late.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut held = [0u8; 3];
        stream.read_exact(&mut held).unwrap();
        assert_eq!(&held, b"two", "what was held back arrives after the heal");
        late.read_exact(&mut held).unwrap();
        assert_eq!(&held, b"thr");
        assert_eq!(exchange(&mut stream, b"four").unwrap(), b"four");
    }
}
