//! The server: binds a port, serves HTTP/1.1 and HTTP/2 (prior knowledge) on it, answers every
//! request with an action's outcome, lets clients that are too slow to send a request go, and
//! stops gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};

use super::actions::{Api, Reply};
use super::config::HttpConfig;
use super::connection::StartedConnection;
use super::error::ApiError;
use super::fields::parse_body;
use super::protocol::{self, RequestIds};
use super::token::TokenSigner;
use crate::{Engine, Storage};

/// Connections the kernel queues until the server accepts them. Beyond it, a new connection's
/// handshake is dropped and retried a second later; the default of `TcpListener::bind` (128)
/// lets a burst of connections delay everyone else's by seconds.
const LISTEN_BACKLOG: u32 = 1024;

/// The engine served over the Kinesis JSON 1.1 API.
///
/// Bind it, then [`run`](KinesisServer::run) it until a shutdown signal; see the
/// [module documentation](super) for an example.
#[derive(Debug)]
pub struct KinesisServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<ServerState>,
}

#[derive(Debug)]
struct ServerState {
    api: Api,
    request_ids: RequestIds,
    max_body_bytes: usize,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
}

impl KinesisServer {
    /// Binds `config.listen` (a port of 0 picks a free one) and readies the server. Fails on an
    /// invalid configuration, a port in use, or no `/dev/urandom` for the token key.
    pub async fn bind(engine: Engine, config: HttpConfig) -> io::Result<KinesisServer> {
        config
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
        let signer = match &engine.config().storage {
            Storage::Directory(data_dir) => TokenSigner::kept_in(data_dir)?,
            Storage::InMemory => TokenSigner::random()?,
        };
        let socket = if config.listen.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does, so that a restarted server rebinds its port at once.
        socket.set_reuseaddr(true)?;
        socket.bind(config.listen)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let local_addr = listener.local_addr()?;
        let prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(local_addr.port()) << 48;
        let max_body_bytes = config.max_body_bytes;
        let header_read_timeout = config.header_read_timeout;
        let body_read_timeout = config.body_read_timeout;
        Ok(KinesisServer {
            listener,
            local_addr,
            state: Arc::new(ServerState {
                api: Api {
                    engine,
                    config: Arc::new(config),
                    signer,
                },
                request_ids: RequestIds::new(prefix),
                max_body_bytes,
                header_read_timeout,
                body_read_timeout,
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients use as their endpoint, e.g. `http://127.0.0.1:4567`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish,
    /// and fsyncs the engine.
    pub async fn run<F>(self, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let KinesisServer {
            listener, state, ..
        } = self;
        let engine = state.api.engine.clone();
        let header_read_timeout = state.header_read_timeout;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Without a timer hyper enforces no header timeout: a client trickling its headers
        // would hold its connection for ever.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let connections = GracefulShutdown::new();
        // Tells connections that have not started a request yet to go at once.
        let (stopping, stop_signal) = tokio::sync::watch::channel(());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            let service = service_fn(move |request: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(state, request.map(Body::new)).await) }
            });
            let builder = builder.clone();
            let watcher = connections.watcher();
            let mut stop_signal = stop_signal.clone();
            tokio::spawn(async move {
                // A client that connects and sends nothing is let go after the header timeout.
                let started = tokio::select! {
                    started = tokio::time::timeout(
                        header_read_timeout,
                        StartedConnection::read_start(stream),
                    ) => started,
                    _ = stop_signal.changed() => return,
                };
                let Ok(Ok(Some(started))) = started else {
                    return;
                };
                let connection = builder.serve_connection(TokioIo::new(started), service);
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let _ = stopping.send(());
        connections.shutdown().await;
        tokio::task::spawn_blocking(move || engine.sync())
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }
}

/// After a failed accept: errors of one connection are skipped; others (out of file
/// descriptors) pause accepting briefly, rather than spinning, until connections close.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn handle(state: Arc<ServerState>, request: Request) -> Response {
    let request_id = state.request_ids.next();
    let outcome = answer(&state, request).await;
    protocol::respond(&request_id, outcome)
}

async fn answer(state: &ServerState, request: Request) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(ApiError::unknown_operation(format!(
            "Kinesis actions are POST requests, not {}",
            parts.method
        )));
    }
    let action = protocol::action(&parts.headers)?;
    protocol::check_content_type(&parts.headers)?;
    let limit = state.max_body_bytes;
    let too_large = || {
        ApiError::too_large(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    };
    if protocol::content_length(&parts.headers).is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    // Reads at most `limit` bytes, whatever the client declared or streams, within the body
    // timeout however slowly it streams.
    let timeout = state.body_read_timeout;
    let bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::request_timeout(format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ))
        })?
        .map_err(|_| too_large())?;
    let request = parse_body(&bytes)?;
    drop(bytes);
    state.api.call(action, &request).await
}
