"""boto3 against `kcl engine serve`: create a stream, write, read back, reshard, read across.

Usage: python3 boto3_roundtrip.py ENDPOINT_URL
Exits non-zero with a message on the first answer that differs from Kinesis's documented one.
"""
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def main(endpoint):
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )
    kinesis.create_stream(StreamName="boto", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName="boto", WaiterConfig={"Delay": 1, "MaxAttempts": 5}
    )
    summary = kinesis.describe_stream_summary(StreamName="boto")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE", summary
    assert summary["OpenShardCount"] == 1, summary

    put = kinesis.put_records(
        StreamName="boto",
        Records=[{"PartitionKey": "key-%d" % i, "Data": b"before-%d" % i} for i in range(20)],
    )
    assert put["FailedRecordCount"] == 0, put
    single = kinesis.put_record(StreamName="boto", PartitionKey="one", Data=b"\x00\xffbinary")
    parent = single["ShardId"]

    iterator = kinesis.get_shard_iterator(
        StreamName="boto", ShardId=parent, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records[:20]] == [b"before-%d" % i for i in range(20)], records
    assert records[20]["Data"] == b"\x00\xffbinary", records[20]
    assert all("ApproximateArrivalTimestamp" in r for r in records)

    kinesis.split_shard(
        StreamName="boto", ShardToSplit=parent, NewStartingHashKey=str(2**127)
    )
    kinesis.put_records(
        StreamName="boto",
        Records=[{"PartitionKey": "key-%d" % i, "Data": b"after-%d" % i} for i in range(20)],
    )
    shards = kinesis.list_shards(StreamName="boto")["Shards"]
    children = [s for s in shards if s.get("ParentShardId") == parent]
    assert len(children) == 2, shards
    closed = [s for s in shards if s["ShardId"] == parent][0]
    assert "EndingSequenceNumber" in closed["SequenceNumberRange"], closed

    # The parent to its end: its records, then the children, then no next iterator.
    out = {"NextShardIterator": iterator}
    parent_records = []
    while out.get("NextShardIterator"):
        out = kinesis.get_records(ShardIterator=out["NextShardIterator"])
        parent_records += out["Records"]
    assert len(parent_records) == 21, len(parent_records)
    assert sorted(c["ShardId"] for c in out["ChildShards"]) == sorted(
        c["ShardId"] for c in children
    ), out

    after = []
    for child in children:
        it = kinesis.get_shard_iterator(
            StreamName="boto", ShardId=child["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        after += kinesis.get_records(ShardIterator=it)["Records"]
    assert sorted(r["Data"] for r in after) == sorted(b"after-%d" % i for i in range(20)), after

    scaled = kinesis.update_shard_count(
        StreamName="boto", TargetShardCount=4, ScalingType="UNIFORM_SCALING"
    )
    assert scaled["TargetShardCount"] == 4, scaled

    try:
        kinesis.describe_stream(StreamName="missing")
        raise AssertionError("describing a missing stream succeeded")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException", error.response

    kinesis.delete_stream(StreamName="boto")
    print("boto3 round trip: ok")


if __name__ == "__main__":
    main(sys.argv[1])
