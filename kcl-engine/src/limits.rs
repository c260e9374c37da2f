//! Per-shard throughput limits as token buckets.

use std::time::Instant;

use crate::config::ThroughputLimits;

/// A bucket holding up to one second's worth of a rate, refilled continuously.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(rate_per_sec: u64) -> Self {
        TokenBucket {
            rate: rate_per_sec as f64,
            tokens: rate_per_sec as f64,
            refilled_at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled_at = now;
    }
}

/// The four Kinesis limits of one shard. Writes are admitted record by record; reads are
/// admitted per call, and the bytes a read returns are charged afterwards (as Kinesis does, a
/// large read throttles the reads that follow it).
#[derive(Debug)]
pub(crate) struct ShardLimiter {
    write_bytes: TokenBucket,
    write_records: TokenBucket,
    read_bytes: TokenBucket,
    reads: TokenBucket,
}

/// Which limit refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    WriteRecords,
    WriteBytes,
    Reads,
    ReadBytes,
}

impl Refusal {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Refusal::WriteRecords => "records written per second",
            Refusal::WriteBytes => "bytes written per second",
            Refusal::Reads => "read calls per second",
            Refusal::ReadBytes => "bytes read per second",
        }
    }
}

impl ShardLimiter {
    pub(crate) fn new(limits: &ThroughputLimits) -> Self {
        ShardLimiter {
            write_bytes: TokenBucket::new(limits.write_bytes_per_sec),
            write_records: TokenBucket::new(limits.write_records_per_sec),
            read_bytes: TokenBucket::new(limits.read_bytes_per_sec),
            reads: TokenBucket::new(limits.reads_per_sec),
        }
    }

    /// Admits one record of `bytes`, or says which limit it would break.
    pub(crate) fn admit_write(&mut self, bytes: usize) -> Result<(), Refusal> {
        let now = Instant::now();
        self.write_records.refill(now);
        self.write_bytes.refill(now);
        if self.write_records.tokens < 1.0 {
            return Err(Refusal::WriteRecords);
        }
        if self.write_bytes.tokens < bytes as f64 {
            return Err(Refusal::WriteBytes);
        }
        self.write_records.tokens -= 1.0;
        self.write_bytes.tokens -= bytes as f64;
        Ok(())
    }

    /// Admits one read call, or says which limit it would break.
    pub(crate) fn admit_read(&mut self) -> Result<(), Refusal> {
        let now = Instant::now();
        self.reads.refill(now);
        self.read_bytes.refill(now);
        if self.reads.tokens < 1.0 {
            return Err(Refusal::Reads);
        }
        if self.read_bytes.tokens <= 0.0 {
            return Err(Refusal::ReadBytes);
        }
        self.reads.tokens -= 1.0;
        Ok(())
    }

    /// Charges the bytes a read returned; the balance may go negative.
    pub(crate) fn charge_read(&mut self, bytes: usize) {
        self.read_bytes.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beyond_the_record_rate_are_refused() {
        let mut limiter = ShardLimiter::new(&ThroughputLimits::KINESIS);
        let admitted = (0..1500)
            .filter(|_| limiter.admit_write(10).is_ok())
            .count();
        assert!((1000..1010).contains(&admitted), "admitted {admitted}");
        assert_eq!(limiter.admit_write(10), Err(Refusal::WriteRecords));
    }

    #[test]
    fn reads_beyond_five_calls_are_refused() {
        let mut limiter = ShardLimiter::new(&ThroughputLimits::KINESIS);
        for _ in 0..5 {
            assert_eq!(limiter.admit_read(), Ok(()));
        }
        assert_eq!(limiter.admit_read(), Err(Refusal::Reads));
    }

    #[test]
    fn a_large_read_throttles_the_next() {
        let mut limiter = ShardLimiter::new(&ThroughputLimits::KINESIS);
        assert_eq!(limiter.admit_read(), Ok(()));
        limiter.charge_read(3 * 1024 * 1024);
        assert_eq!(limiter.admit_read(), Err(Refusal::ReadBytes));
    }
}
