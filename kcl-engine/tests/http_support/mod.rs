//! What the HTTP tests share: a server on an ephemeral port, an SDK client for it, and raw
//! HTTP/1.1 and HTTP/2 requests.
#![allow(dead_code)]

use std::net::SocketAddr;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use kcl_engine::Engine;
use kcl_engine::http::{HttpConfig, KinesisServer};
use tokio::sync::oneshot;

/// A server running in this process until dropped (or `stop`ped).
pub struct TestServer {
    pub addr: SocketAddr,
    pub endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Serves `engine` on 127.0.0.1 with `config` (its listen address is replaced).
    pub async fn start_with(engine: Engine, config: HttpConfig) -> TestServer {
        let config = config.listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = KinesisServer::bind(engine, config).await.expect("bind");
        let addr = server.local_addr();
        let endpoint = server.endpoint_url();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            endpoint,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves an in-memory engine with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(Engine::in_memory(), HttpConfig::default()).await
    }

    /// An SDK client for this server, without SDK retries (tests see every error).
    pub fn client(&self) -> aws_sdk_kinesis::Client {
        sdk_client(&self.endpoint)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An SDK client for `endpoint` with fixed credentials, region us-east-1, no retries.
pub fn sdk_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// An answer to a raw request.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl RawResponse {
    /// The `__type` of an error body.
    pub fn error_type(&self) -> &str {
        self.body["__type"].as_str().unwrap_or("")
    }

    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// POSTs `body` over HTTP/1.1 with the given `X-Amz-Target` (none if `None`).
pub async fn post(addr: SocketAddr, target: Option<&str>, body: impl Into<Bytes>) -> RawResponse {
    send(addr, false, "POST", target, body.into()).await
}

/// POSTs over HTTP/2 with prior knowledge.
pub async fn post_h2(
    addr: SocketAddr,
    target: Option<&str>,
    body: impl Into<Bytes>,
) -> RawResponse {
    send(addr, true, "POST", target, body.into()).await
}

/// Sends one request with `method` over a fresh connection.
pub async fn send(
    addr: SocketAddr,
    http2: bool,
    method: &str,
    target: Option<&str>,
    body: Bytes,
) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(stream);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/"))
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(target) = target {
        request = request.header("x-amz-target", target);
    }
    let request = request.body(Full::new(body)).expect("request");
    let response = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        sender.send_request(request).await.expect("h2 request")
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(connection);
        sender.send_request(request).await.expect("request")
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    RawResponse {
        status,
        headers,
        body,
        text,
    }
}

/// The `X-Amz-Target` of `action`.
pub fn target(action: &str) -> String {
    format!("Kinesis_20131202.{action}")
}
