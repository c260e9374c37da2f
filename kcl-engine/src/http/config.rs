//! How the HTTP server is set up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::clock::{Clock, SystemClock};

/// The largest request body accepted by default: a full PutRecords (10 MiB of data, base64
/// expanded by 4/3, plus 500 partition keys and the JSON around them) fits with room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The configuration of a [`KinesisServer`](super::KinesisServer). Start from
/// [`HttpConfig::default`] and adjust with the setters.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen. Defaults to `127.0.0.1:4567` (the loopback interface only; kinesalite's
    /// port).
    pub listen: SocketAddr,
    /// The region stream ARNs name. Defaults to `us-east-1`.
    pub region: String,
    /// The 12-digit account stream ARNs name. Defaults to `000000000000`.
    pub account: String,
    /// How long a shard iterator can be used. Defaults to 5 minutes, as Kinesis.
    pub iterator_ttl: Duration,
    /// How long a ListShards / ListStreams `NextToken` can be used. Defaults to 300 s, as
    /// Kinesis.
    pub next_token_ttl: Duration,
    /// The largest request body accepted. Defaults to [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// How long a connection may take to send a request's headers, counted from when the
    /// server starts waiting for them (so it also closes idle keep-alive connections). A client
    /// that trickles its headers, or connects and sends nothing, is disconnected. Defaults to
    /// 30 s, hyper's default.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive once its headers have; a slower body is
    /// answered `408 RequestTimeoutException` (which SDKs retry). Defaults to 60 s: a 16 MiB
    /// body needs no more than about 280 KiB/s.
    pub body_read_timeout: Duration,
    /// The clock iterators and tokens are issued and expired by. Defaults to the system clock;
    /// tests use a [`ManualClock`](crate::ManualClock) to expire them without waiting.
    pub clock: Arc<dyn Clock>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4567)),
            region: "us-east-1".to_owned(),
            account: "000000000000".to_owned(),
            iterator_ttl: Duration::from_secs(300),
            next_token_ttl: Duration::from_secs(300),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

impl HttpConfig {
    /// Sets the listening address (`127.0.0.1:0` picks a free port).
    pub fn listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Sets the region of stream ARNs.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the account of stream ARNs.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    /// Sets the lifetime of shard iterators.
    pub fn iterator_ttl(mut self, ttl: Duration) -> Self {
        self.iterator_ttl = ttl;
        self
    }

    /// Sets the lifetime of pagination tokens.
    pub fn next_token_ttl(mut self, ttl: Duration) -> Self {
        self.next_token_ttl = ttl;
        self
    }

    /// Sets the request body limit.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the time allowed for a request's headers.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets the time allowed for a request's body.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Sets the clock of iterator and token expiry.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.region.is_empty()
            || !self
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Error::invalid(
                "region",
                format!("{:?} is not a region name like us-east-1", self.region),
            ));
        }
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "account",
                format!("{:?} is not a 12-digit account id", self.account),
            ));
        }
        if self.iterator_ttl.is_zero() {
            return Err(Error::invalid("iterator_ttl", "must be above zero"));
        }
        if self.next_token_ttl.is_zero() {
            return Err(Error::invalid("next_token_ttl", "must be above zero"));
        }
        if self.header_read_timeout.is_zero() {
            return Err(Error::invalid("header_read_timeout", "must be above zero"));
        }
        if self.body_read_timeout.is_zero() {
            return Err(Error::invalid("body_read_timeout", "must be above zero"));
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::invalid("max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}
