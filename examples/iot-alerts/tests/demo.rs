//! `iot-alerts demo --duration` as a user runs it: it ends by itself and its summary shows
//! every reading processed, the split followed parent before child, and every anomaly alerted.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{Process, log_of};

/// The value of the summary line `name:`.
fn value<'a>(summary: &'a str, name: &str) -> &'a str {
    summary
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name:?} in the summary:\n{summary}"))
}

#[test]
fn the_demo_runs_alone_and_its_summary_shows_the_guarantees_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let log = dir.path().join("demo.log");
    let stdout = dir.path().join("demo.out");
    let mut demo = Process::start(
        "demo",
        &[
            "demo",
            "--duration",
            "12s",
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ],
        Stdio::from(std::fs::File::create(&stdout).expect("stdout file")),
        &log,
    );
    // 12 s of sensors, then catching up and stopping: generous for a loaded machine.
    let status = demo.wait(Duration::from_secs(90));
    let output = std::fs::read_to_string(&stdout).expect("read stdout");
    assert!(
        status.success(),
        "the demo failed: {status}\n{output}\n{}",
        log_of(&log)
    );

    let summary = &output[output.find("== summary ==").expect("a summary")..];
    assert_eq!(value(summary, "every reading processed:"), "yes");
    let written: u64 = value(summary, "records written:")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count written");
    assert!(written >= 20_000, "12 s at 2,000 readings/s: {written}");
    assert!(value(summary, "split:").starts_with("shardId-000000000000 -> "));
    assert!(
        value(summary, "parent before child:").starts_with("yes"),
        "{summary}"
    );
    let alerts: u64 = value(summary, "alerts raised:")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count of alerts");
    assert!(alerts >= 4, "{summary}");
    assert_eq!(value(summary, "every anomaly alerted:"), "yes");
    assert_eq!(value(summary, "false alerts:"), "none");
    // Three malformed records were written; one delivered again would be skipped again.
    let skipped: u64 = value(summary, "malformed records skipped:")
        .parse()
        .expect("a count skipped");
    assert!(skipped >= 3, "{summary}");
    assert!(value(summary, "worker-1 shards:").contains("shardId-"));
    assert!(value(summary, "worker-2 shards:").contains("shardId-"));
    assert_eq!(value(summary, "result:"), "every check passed");

    // Alerts were printed as they happened, before the summary; the data stayed in the dir.
    let before = &output[..output.find("== summary ==").unwrap_or(0)];
    assert_eq!(before.matches("ALERT ").count() as u64, alerts);
    assert!(data_dir.join("engine").is_dir() && data_dir.join("leases.db").is_file());
}
