//! The server: binds a port, serves HTTP/1.1 and HTTP/2 (prior knowledge) on it, answers every
//! request with an action's outcome, and stops gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use tokio::net::TcpListener;

use super::actions::{Api, Reply};
use super::config::HttpConfig;
use super::error::ApiError;
use super::fields::parse_body;
use super::protocol::{self, RequestIds};
use super::token::TokenSigner;
use crate::Engine;

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
}

impl KinesisServer {
    /// Binds `config.listen` (a port of 0 picks a free one) and readies the server. Fails on an
    /// invalid configuration, a port in use, or no `/dev/urandom` for the token key.
    pub async fn bind(engine: Engine, config: HttpConfig) -> io::Result<KinesisServer> {
        config
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))?;
        let signer = TokenSigner::random()?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(local_addr.port()) << 48;
        let max_body_bytes = config.max_body_bytes;
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
        let engine = self.state.api.engine.clone();
        let app = Router::new().fallback(handle).with_state(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        tokio::task::spawn_blocking(move || engine.sync())
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
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
    // Reads at most `limit` bytes, whatever the client declared or streams.
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let request = parse_body(&bytes)?;
    drop(bytes);
    state.api.call(action, &request).await
}
