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
//! A cut ([`BlackHoleProxy::cut`]) is the other failure of a network path: every connection open
//! through the proxy is reset in both directions at once, as a firewall that drops its state
//! table or a proxy that restarts does, while new connections are accepted and forwarded as
//! before, so the client can reconnect at once. The server sees its sessions end (PostgreSQL
//! ends each backend, and lets go of its session-level locks), the client sees its calls fail.
//!
//! One difference from a real partition: the proxy's kernel still acknowledges what it receives,
//! so a client relying on TCP keepalive or `TCP_USER_TIMEOUT` would not notice the hole; a
//! client that bounds its own calls (what the lease store must do) does.
//!
//! The proxy runs on a thread and runtime of its own, so a test that blocks its own runtime
//! (reading logs, say) never delays the store traffic it carries.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// How long [`BlackHoleProxy::cut`] waits for the proxy's thread to reset its connections: it
/// takes microseconds; the bound only keeps a broken proxy from hanging a test.
const CUT_WAIT: Duration = Duration::from_secs(10);

/// A proxy from a local port to `upstream`.
pub struct BlackHoleProxy {
    address: SocketAddr,
    /// `true` while forwarding, `false` while black-holed.
    open: watch::Sender<bool>,
    /// Requests to cut, each answered with how many connections were reset.
    cuts: mpsc::UnboundedSender<std_mpsc::SyncSender<usize>>,
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
        let (cuts, cut_requests) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let upstream = upstream.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("proxy {address}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::select! {
                                () = accept(listener, upstream, gate, cut_requests) => {}
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
            cuts,
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

    /// Resets every connection the proxy has accepted and not yet closed, on both sides
    /// (client and upstream) with a TCP RST, and returns how many there were, once they are
    /// closed. What either side had in flight is dropped, and a connection held at a black hole
    /// is reset too. Connections made after this returns are forwarded as usual (or held, while
    /// black-holed).
    ///
    /// Blocks the calling thread for the moment the proxy's thread takes (microseconds).
    pub fn cut(&self) -> usize {
        let (reply, answer) = std_mpsc::sync_channel(1);
        if self.cuts.send(reply).is_err() {
            return 0;
        }
        answer
            .recv_timeout(CUT_WAIT)
            .unwrap_or_else(|error| panic!("the proxy at {} did not cut: {error}", self.address))
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

/// What a cut hands each connection: the connection drops it once reset, and the cut waits
/// until every one is dropped.
type CutDone = mpsc::Sender<()>;

/// Accepts connections until the proxy stops; each is relayed on a task of its own, dropped
/// with the proxy, and can be cut through the switch kept for it here.
async fn accept(
    listener: TcpListener,
    upstream: String,
    gate: watch::Receiver<bool>,
    mut cut_requests: mpsc::UnboundedReceiver<std_mpsc::SyncSender<usize>>,
) {
    let mut connections = JoinSet::new();
    let mut switches: Vec<oneshot::Sender<CutDone>> = Vec::new();
    loop {
        // Accepting first: a connection the kernel has queued when a cut is asked for is
        // accepted, and cut, before the cut is done.
        tokio::select! {
            biased;
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    switches.retain(|switch| !switch.is_closed());
                    let (switch, cut) = oneshot::channel();
                    switches.push(switch);
                    connections.spawn(relay(client, upstream.clone(), gate.clone(), cut));
                }
                Err(error) => eprintln!("proxy: accept failed: {error}"),
            },
            Some(_) = connections.join_next() => {}
            Some(reply) = cut_requests.recv() => {
                let (done, mut all_done) = mpsc::channel(1);
                // A switch whose connection already ended refuses the send.
                let cut = switches
                    .drain(..)
                    .map(|switch| switch.send(done.clone()).is_ok())
                    .filter(|&sent| sent)
                    .count();
                drop(done);
                // `None` once every connection that got a clone has dropped it.
                let _ = all_done.recv().await;
                let _ = reply.try_send(cut);
            }
        }
    }
}

/// Relays one connection both ways once the gate is open, until either side ends it or a cut
/// resets both.
async fn relay(
    mut client: TcpStream,
    upstream: String,
    gate: watch::Receiver<bool>,
    cut: oneshot::Receiver<CutDone>,
) {
    let mut server = None;
    let done = tokio::select! {
        () = forward(&mut client, &mut server, &upstream, gate) => return,
        Ok(done) = cut => done,
    };
    reset(client);
    if let Some(server) = server {
        reset(server);
    }
    drop(done);
}

/// Closes `stream` with a RST rather than a FIN: no lingering, what is unsent is dropped, and
/// the peer's next call fails at once, as after a firewall reset.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Connects to `upstream` once the gate is open (the connection is left in `server`, for a cut
/// to reset), then pumps both ways until both directions ended.
async fn forward(
    client: &mut TcpStream,
    server: &mut Option<TcpStream>,
    upstream: &str,
    mut gate: watch::Receiver<bool>,
) {
    wait_open(&mut gate).await;
    let server = match TcpStream::connect(upstream).await {
        Ok(connected) => server.insert(connected),
        // Closing the client is what refusing it would look like to the client.
        Err(_) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
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

    /// An echo server on a thread; returns its address, and a channel that gets a message each
    /// time one of its connections ends.
    fn echo_server() -> (SocketAddr, std_mpsc::Receiver<()>) {
        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (ended, ends) = std_mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let ended = ended.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = ended.send(());
                });
            }
        });
        (address, ends)
    }

    /// A connection through `proxy` whose reads give up after `timeout`.
    fn connect(proxy: &BlackHoleProxy, timeout: Duration) -> StdTcpStream {
        let stream = StdTcpStream::connect(proxy.address()).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream
    }

    /// Asserts that `stream` was reset: its next read fails with `ConnectionReset`.
    fn assert_reset(stream: &mut StdTcpStream, which: &str) {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{which}"),
            Ok(n) => panic!("{which} read {n} bytes after the cut"),
        }
    }

    fn exchange(stream: &mut StdTcpStream, text: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn a_black_hole_holds_bytes_without_closing_and_healing_delivers_them() {
        let (upstream, _ends) = echo_server();
        let proxy = BlackHoleProxy::start(&upstream.to_string()).unwrap();
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

    #[test]
    fn a_cut_resets_every_connection_on_both_sides_and_new_ones_are_forwarded() {
        let (upstream, ends) = echo_server();
        let proxy = BlackHoleProxy::start(&upstream.to_string()).unwrap();
        let wait = Duration::from_secs(10);
        let mut first = connect(&proxy, wait);
        let mut second = connect(&proxy, wait);
        assert_eq!(exchange(&mut first, b"one").unwrap(), b"one");
        assert_eq!(exchange(&mut second, b"two").unwrap(), b"two");

        assert_eq!(proxy.cut(), 2, "both connections were open");
        assert_reset(&mut first, "the first client");
        assert_reset(&mut second, "the second client");
        // The server's side of each ended too.
        for _ in 0..2 {
            ends.recv_timeout(wait)
                .expect("the upstream saw its connection end");
        }

        // A new connection is forwarded, and a cut takes it too, along with one held at a
        // black hole that never reached the upstream.
        let mut third = connect(&proxy, wait);
        assert_eq!(exchange(&mut third, b"three").unwrap(), b"three");
        proxy.black_hole();
        let mut held = connect(&proxy, wait);
        held.write_all(b"four").unwrap();
        // Accepted (the proxy reads its listener even while black-holed) before the cut.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(proxy.cut(), 2);
        assert_reset(&mut third, "the third client");
        assert_reset(&mut held, "the client held at the black hole");
        assert!(
            proxy.is_black_holed(),
            "a cut leaves the black hole as it was"
        );

        proxy.heal();
        let mut fourth = connect(&proxy, wait);
        assert_eq!(exchange(&mut fourth, b"five").unwrap(), b"five");
        assert_eq!(proxy.cut(), 1, "only the connection still open is cut");
    }
}
