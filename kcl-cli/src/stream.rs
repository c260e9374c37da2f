//! `kcl stream ...`: stream administration through the Kinesis API, against any endpoint.

use std::io::BufRead;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ScalingType, Shard};
use clap::{Args, Subcommand};

/// Arguments of `kcl stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The Kinesis endpoint, e.g. http://127.0.0.1:4567 (local credentials and region
    /// us-east-1 are used). Without it, the AWS configuration chain decides region, credentials
    /// and endpoint (AWS_ENDPOINT_URL), as for real Kinesis.
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Create {
        /// The stream's name.
        name: String,
        /// Number of shards.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        shards: i32,
    },
    /// Describe a stream and its shards.
    Describe {
        /// The stream's name.
        name: String,
    },
    /// List streams.
    List,
    /// Write records: each --data value, or else each line of standard input, is one record.
    Put {
        /// The stream's name.
        name: String,
        /// Partition key of the records.
        #[arg(long)]
        partition_key: String,
        /// A record's data (repeatable).
        #[arg(long)]
        data: Vec<String>,
    },
    /// Split a shard; by default at the middle of its hash key range.
    Split {
        /// The stream's name.
        name: String,
        /// The shard to split.
        #[arg(long)]
        shard: String,
        /// The first hash key of the upper child (decimal).
        #[arg(long)]
        hash_key: Option<String>,
    },
    /// Merge two shards with adjacent hash key ranges.
    Merge {
        /// The stream's name.
        name: String,
        /// The first shard.
        #[arg(long)]
        shard: String,
        /// The adjacent shard.
        #[arg(long)]
        adjacent: String,
    },
    /// Rescale a stream to a number of open shards (uniform scaling).
    Scale {
        /// The stream's name.
        name: String,
        /// The target number of open shards.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        shards: i32,
    },
}

/// Runs a `kcl stream` command.
pub async fn run(args: StreamArgs) -> Result<(), String> {
    let client = match &args.endpoint {
        Some(endpoint) => {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!(
                    "--endpoint {endpoint:?} must be a URL starting with http:// or https://"
                ));
            }
            kcl_kinesis::local_client(endpoint)
        }
        None => kcl_kinesis::client_from_env().await,
    };
    match args.command {
        StreamCommand::Create { name, shards } => {
            client
                .create_stream()
                .stream_name(&name)
                .shard_count(shards)
                .send()
                .await
                .map_err(failed("CreateStream"))?;
            println!("created stream {name} with {shards} shards");
        }
        StreamCommand::Describe { name } => {
            let summary = client
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await
                .map_err(failed("DescribeStreamSummary"))?;
            if let Some(summary) = summary.stream_description_summary() {
                println!("stream      {}", summary.stream_name());
                println!("arn         {}", summary.stream_arn());
                println!("status      {}", summary.stream_status().as_str());
                println!("retention   {} hours", summary.retention_period_hours());
                println!("open shards {}", summary.open_shard_count());
            }
            for shard in list_shards(&client, &name).await? {
                print_shard(&shard);
            }
        }
        StreamCommand::List => {
            let mut start: Option<String> = None;
            loop {
                let page = client
                    .list_streams()
                    .set_exclusive_start_stream_name(start.clone())
                    .send()
                    .await
                    .map_err(failed("ListStreams"))?;
                for name in page.stream_names() {
                    println!("{name}");
                }
                match page.stream_names().last() {
                    Some(last) if page.has_more_streams() => start = Some(last.clone()),
                    _ => break,
                }
            }
        }
        StreamCommand::Put {
            name,
            partition_key,
            data,
        } => {
            let records: Vec<String> = if data.is_empty() {
                std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<Result<_, _>>()
                    .map_err(|error| format!("cannot read standard input: {error}"))?
            } else {
                data
            };
            for record in records {
                let written = client
                    .put_record()
                    .stream_name(&name)
                    .partition_key(&partition_key)
                    .data(Blob::new(record.into_bytes()))
                    .send()
                    .await
                    .map_err(failed("PutRecord"))?;
                println!("{} {}", written.shard_id(), written.sequence_number());
            }
        }
        StreamCommand::Split {
            name,
            shard,
            hash_key,
        } => {
            let hash_key = match hash_key {
                Some(key) => key,
                None => middle_of(&client, &name, &shard).await?,
            };
            client
                .split_shard()
                .stream_name(&name)
                .shard_to_split(&shard)
                .new_starting_hash_key(&hash_key)
                .send()
                .await
                .map_err(failed("SplitShard"))?;
            println!("split {shard} of {name} at hash key {hash_key}");
        }
        StreamCommand::Merge {
            name,
            shard,
            adjacent,
        } => {
            client
                .merge_shards()
                .stream_name(&name)
                .shard_to_merge(&shard)
                .adjacent_shard_to_merge(&adjacent)
                .send()
                .await
                .map_err(failed("MergeShards"))?;
            println!("merged {shard} and {adjacent} of {name}");
        }
        StreamCommand::Scale { name, shards } => {
            let scaled = client
                .update_shard_count()
                .stream_name(&name)
                .target_shard_count(shards)
                .scaling_type(ScalingType::UniformScaling)
                .send()
                .await
                .map_err(failed("UpdateShardCount"))?;
            println!(
                "scaled {name} from {} to {} open shards",
                scaled.current_shard_count().unwrap_or(0),
                scaled.target_shard_count().unwrap_or(shards)
            );
        }
    }
    Ok(())
}

fn failed<E, R>(operation: &'static str) -> impl Fn(SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |error| match (&error, error.code()) {
        (SdkError::ServiceError(_), Some(code)) => format!(
            "{operation} failed: {code}: {}",
            error.message().unwrap_or("(no message)")
        ),
        _ => format!("{operation} failed: {}", DisplayErrorContext(&error)),
    }
}

async fn list_shards(client: &aws_sdk_kinesis::Client, name: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(name),
        };
        let page = request.send().await.map_err(failed("ListShards"))?;
        shards.extend(page.shards().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

fn print_shard(shard: &Shard) {
    let range = shard.hash_key_range();
    let sequence = shard.sequence_number_range();
    let state = match sequence.and_then(|range| range.ending_sequence_number()) {
        Some(_) => "closed",
        None => "open",
    };
    let parents: Vec<&str> = shard
        .parent_shard_id()
        .into_iter()
        .chain(shard.adjacent_parent_shard_id())
        .collect();
    println!(
        "{} {state:6} hash keys [{}, {}] parents [{}]",
        shard.shard_id(),
        range.map_or("?", |range| range.starting_hash_key()),
        range.map_or("?", |range| range.ending_hash_key()),
        parents.join(", ")
    );
}

/// The hash key in the middle of a shard's range.
async fn middle_of(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shard_id: &str,
) -> Result<String, String> {
    let shards = list_shards(client, name).await?;
    let shard = shards
        .iter()
        .find(|shard| shard.shard_id() == shard_id)
        .ok_or_else(|| format!("stream {name} has no shard {shard_id}"))?;
    let range = shard
        .hash_key_range()
        .ok_or_else(|| format!("shard {shard_id} has no hash key range"))?;
    let parse = |text: &str| {
        text.parse::<u128>()
            .map_err(|_| format!("shard {shard_id} has a malformed hash key {text:?}"))
    };
    let (start, end) = (
        parse(range.starting_hash_key())?,
        parse(range.ending_hash_key())?,
    );
    if start == end {
        return Err(format!(
            "shard {shard_id} covers a single hash key and cannot be split"
        ));
    }
    Ok((start + (end - start) / 2 + 1).to_string())
}
