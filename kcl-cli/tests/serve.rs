//! The `kcl` binary: `kcl engine serve` answers the stream commands and boto3, and stops
//! gracefully on SIGTERM with its data synced; bad command lines fail with a clear message.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

const KCL: &str = env!("CARGO_BIN_EXE_kcl");

/// `kcl engine serve` on a free port, killed if the test fails before stopping it.
struct Served {
    child: Child,
    stdout: BufReader<ChildStdout>,
    endpoint: String,
}

impl Served {
    fn start(data_dir: &Path) -> Served {
        let mut child = Command::new(KCL)
            .args([
                "engine",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--fsync",
                "always",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kcl engine serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first line");
        let endpoint = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
            .to_owned();
        Served {
            child,
            stdout,
            endpoint,
        }
    }

    /// Sends SIGTERM and waits: the exit status and what it printed after the first line.
    fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait");
        let mut rest = String::new();
        for line in (&mut self.stdout).lines() {
            rest.push_str(&line.unwrap_or_default());
            rest.push('\n');
        }
        (status.success(), rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kcl(args: &[&str]) -> Output {
    Command::new(KCL).args(args).output().expect("run kcl")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kcl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn stream_commands_work_against_the_served_engine_which_stops_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(dir.path());
    let endpoint = served.endpoint.clone();
    let at = ["--endpoint", endpoint.as_str()];
    let run = |args: &[&str]| stdout_of(&kcl(&[args, &at[..]].concat()));

    assert!(run(&["stream", "create", "cli", "--shards", "2"]).contains("created stream cli"));
    let put = run(&[
        "stream",
        "put",
        "cli",
        "--partition-key",
        "k",
        "--data",
        "a",
        "--data",
        "b",
    ]);
    assert_eq!(put.lines().count(), 2, "{put}");
    assert!(run(&["stream", "split", "cli", "--shard", "shardId-000000000000"]).contains("split"));
    let described = run(&["stream", "describe", "cli"]);
    assert!(described.contains("open shards 3"), "{described}");
    assert!(
        described.contains("shardId-000000000002 open"),
        "{described}"
    );
    assert!(
        run(&[
            "stream",
            "merge",
            "cli",
            "--shard",
            "shardId-000000000002",
            "--adjacent",
            "shardId-000000000003"
        ])
        .contains("merged")
    );
    assert!(run(&["stream", "scale", "cli", "--shards", "4"]).contains("to 4 open shards"));
    assert_eq!(run(&["stream", "list"]).trim(), "cli");

    let refused = kcl(&[&["stream", "describe", "nope"], &at[..]].concat());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ResourceNotFoundException"));

    let (clean, said) = served.terminate();
    assert!(clean, "SIGTERM ends the server cleanly");
    assert!(said.contains("stopped"), "{said}");

    // The data is there after a restart.
    let served = Served::start(dir.path());
    let at = ["--endpoint", served.endpoint.as_str()];
    let described = stdout_of(&kcl(&[&["stream", "describe", "cli"], &at[..]].concat()));
    assert!(described.contains("open shards 4"), "{described}");
}

#[test]
fn bad_command_lines_fail_with_a_clear_message() {
    for (args, says) in [
        (
            vec!["engine", "serve", "--in-memory", "--fsync", "sometimes"],
            "never, always, interval:MS",
        ),
        (
            vec!["engine", "serve", "--in-memory", "--fsync", "interval:0"],
            "above 0",
        ),
        (
            vec!["engine", "serve", "--in-memory", "--listen", "nowhere"],
            "--listen",
        ),
        (vec!["engine", "serve"], "--data-dir"),
        (
            vec![
                "stream",
                "create",
                "x",
                "--shards",
                "0",
                "--endpoint",
                "http://127.0.0.1:1",
            ],
            "--shards",
        ),
        (
            vec!["stream", "list", "--endpoint", "localhost:4567"],
            "http://",
        ),
    ] {
        let output = kcl(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn boto3_creates_writes_reads_and_reshards_against_the_served_engine() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let has_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_boto3 {
        assert!(
            !in_ci,
            "CI=true and python3 with boto3 is missing (pip install boto3)"
        );
        eprintln!("SKIPPED the boto3 test: python3 with boto3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(dir.path());
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kcl-engine/tests/compat/boto3_roundtrip.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&served.endpoint)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "boto3 script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("boto3 round trip: ok"));
    let (clean, _) = served.terminate();
    assert!(clean);
}
