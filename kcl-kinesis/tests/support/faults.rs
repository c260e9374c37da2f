//! Faults between the SDK and the engine's server, injected by an SDK interceptor: replies lost
//! on the way back (as a network or an overloaded service loses them), and answers shaped as
//! other Kinesis-compatible services shape them (no `ChildShards` at the end of a closed shard,
//! no `NextShardIterator`).
//!
//! The engine still serves every request; only what the SDK hands back to the source changes,
//! so the source meets the fault at the exact call the test names and nowhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aws_sdk_kinesis::config::interceptors::FinalizerInterceptorContextMut;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kinesis::error::BoxError;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
use tokio::sync::Notify;

/// The faults to inject; clones share them, so a test changes them while a reader runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// ListShards replies still to lose (`u32::MAX`: all of them, until told otherwise).
    listings_to_lose: AtomicU32,
    /// Woken each time a ListShards reply is lost.
    listing_lost: Notify,
    /// GetRecords answers arrive without `ChildShards`.
    omit_child_shards: AtomicBool,
    /// GetRecords answers arrive without `NextShardIterator`.
    omit_next_shard_iterator: AtomicBool,
}

impl Faults {
    /// A client for the server at `endpoint` that suffers these faults. The SDK's own retries
    /// are off, so each lost reply reaches the source, whose retries are the ones under test.
    pub fn client(&self, endpoint: &str) -> aws_sdk_kinesis::Client {
        let config = kcl_kinesis::local_client(endpoint)
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .interceptor(self.clone())
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }

    /// Loses the replies of the next `count` ListShards calls (`u32::MAX`: of every call until
    /// this is called again; 0: none).
    pub fn lose_listings(&self, count: u32) {
        self.state.listings_to_lose.store(count, Ordering::SeqCst);
    }

    /// Waits until a ListShards reply has been lost (at once if one was lost since the last
    /// wait).
    pub async fn listing_lost(&self) {
        self.state.listing_lost.notified().await;
    }

    /// Whether GetRecords answers arrive without `ChildShards`, as from services that do not
    /// send them.
    pub fn omit_child_shards(&self, omit: bool) {
        self.state.omit_child_shards.store(omit, Ordering::SeqCst);
    }

    /// Whether GetRecords answers arrive without `NextShardIterator`.
    pub fn omit_next_shard_iterator(&self, omit: bool) {
        self.state
            .omit_next_shard_iterator
            .store(omit, Ordering::SeqCst);
    }

    /// Takes one lost ListShards reply from the budget, if any is left.
    fn take_lost_listing(&self) -> bool {
        self.state
            .listings_to_lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u32::MAX => Some(u32::MAX),
                left => Some(left - 1),
            })
            .is_ok()
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "Faults"
    }

    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        if output.downcast_ref::<ListShardsOutput>().is_some() && self.take_lost_listing() {
            self.state.listing_lost.notify_one();
            // The server answered; the reply is lost on its way back. The SDK reports an
            // interceptor's error here as a response error, as for a reply cut short.
            return Err("ListShards reply lost (injected fault)".into());
        }
        if let Some(records) = output.downcast_mut::<GetRecordsOutput>() {
            if self.state.omit_child_shards.load(Ordering::SeqCst) {
                records.child_shards = None;
            }
            if self.state.omit_next_shard_iterator.load(Ordering::SeqCst) {
                records.next_shard_iterator = None;
            }
        }
        Ok(())
    }
}
