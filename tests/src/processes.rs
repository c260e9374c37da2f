//! Processes the multi-process tests run: `kcl engine serve` on a free port with a temporary data
//! directory, and `kcl-test-worker` processes that the tests kill (SIGKILL), pause (SIGSTOP),
//! resume (SIGCONT) and start again. Every process is killed when its handle is dropped, so a
//! failing test leaves nothing running.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::processor_faults::ProcessorFaults;
use crate::worker_log::wall_micros;

/// The `kcl` binary: `KCL_BIN` if set (a copy that later builds do not replace); else
/// `target/<profile>/kcl` if it is newer than every source it is built from (as after
/// `cargo test --workspace`); else built by `cargo build -p kcl-cli` in the profile these tests
/// were built in, so `cargo test -p kcl-tests` alone is enough.
pub fn kcl_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("KCL_BIN") {
                return PathBuf::from(path);
            }
            // The test executable is target/<profile>/deps/<name>-<hash>.
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps")
                .to_path_buf();
            let binary = profile_dir.join("kcl");
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the workspace root");
            let sources = [
                "kcl-cli",
                "kcl-engine",
                "kcl-kinesis",
                "kcl-core",
                "Cargo.toml",
                "Cargo.lock",
            ]
            .map(|source| workspace.join(source));
            let built = modified(&binary);
            if built.is_some() && sources.iter().filter_map(|s| newest(s)).max() <= built {
                return binary;
            }
            // Asking cargo may rebuild the engine's crates with this package's features, so it
            // is only done when the binary is missing or stale.
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .current_dir(workspace)
                .args(["build", "--quiet", "-p", "kcl-cli", "--bin", "kcl"]);
            if profile_dir
                .file_name()
                .is_some_and(|name| name == "release")
            {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build -p kcl-cli");
            assert!(status.success(), "cargo build -p kcl-cli failed");
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of `path` or, for a directory, of anything under it (tests,
/// benches and examples excluded: the binary does not depend on them).
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return modified(path);
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            !["tests", "benches", "examples", "target"].contains(&name.to_string_lossy().as_ref())
        })
        .filter_map(|entry| newest(&entry.path()))
        .chain(modified(path))
        .max()
}

/// The worker binary: `KCL_TEST_WORKER_BIN` if set (a copy that later builds of the workspace
/// do not replace during a long run), else `built`, the test's `CARGO_BIN_EXE_kcl-test-worker`.
pub fn worker_binary(built: &str) -> PathBuf {
    std::env::var_os("KCL_TEST_WORKER_BIN").map_or_else(|| PathBuf::from(built), PathBuf::from)
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to `pid` with kill(1): the workspace forbids
/// unsafe code, and a subprocess per signal costs nothing next to what a test waits for.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// `kcl engine serve` on a free port of 127.0.0.1, durable in a temporary directory.
pub struct EngineServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl EngineServer {
    /// Starts the server and waits for the line naming its endpoint.
    pub fn start() -> EngineServer {
        let data = tempfile::tempdir().expect("a data directory");
        let mut child = Command::new(kcl_binary())
            .args(["engine", "serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kcl engine serve");
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the server's first line");
        let endpoint = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
            .to_owned();
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        EngineServer {
            child,
            endpoint,
            _data: data,
        }
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every worker process of a test shares.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The engine's endpoint.
    pub endpoint: String,
    /// The stream.
    pub stream: String,
    /// The lease store's URL (`sqlite://...` or `postgres://...`).
    pub leases: String,
    /// The PostgreSQL lease table, if not the default.
    pub table: Option<String>,
    /// The PostgreSQL `application_name` of the workers' sessions.
    pub application_name: Option<String>,
    /// The lease duration.
    pub lease: Duration,
    /// The taker interval.
    pub taker: Duration,
    /// How often processors checkpoint in `process_records`: zero for after every batch.
    pub checkpoint_interval: Duration,
    /// The faults processors inject (none by default); each process draws from a seed of its
    /// own, derived from its name.
    pub processor_faults: ProcessorFaults,
    /// Where the logs go: `<name>.<incarnation>.jsonl`, with its stderr beside it.
    pub log_dir: PathBuf,
}

/// A `kcl-test-worker` process, started again under a new incarnation after each kill.
pub struct WorkerProcess {
    /// The test's name for the worker (`w1`).
    pub name: String,
    incarnation: u32,
    child: Option<Child>,
    stopped: bool,
    binary: PathBuf,
    settings: WorkerSettings,
}

impl WorkerProcess {
    /// Starts worker `name` from `binary` (the test's `CARGO_BIN_EXE_kcl-test-worker`).
    pub fn start(binary: &Path, name: &str, settings: &WorkerSettings) -> WorkerProcess {
        let mut worker = WorkerProcess {
            name: name.to_owned(),
            incarnation: 0,
            child: None,
            stopped: false,
            binary: binary.to_path_buf(),
            settings: settings.clone(),
        };
        worker.spawn();
        worker
    }

    /// The name its log lines carry: `w1.0`, then `w1.1` after a restart.
    pub fn instance(&self) -> String {
        format!("{}.{}", self.name, self.incarnation)
    }

    /// True while the process runs (not killed); a stopped process is still alive.
    pub fn is_alive(&self) -> bool {
        self.child.is_some()
    }

    /// True while the process is stopped by SIGSTOP.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn spawn(&mut self) {
        let s = &self.settings;
        let instance = self.instance();
        let stderr = std::fs::File::create(s.log_dir.join(format!("{instance}.stderr")))
            .expect("the worker's stderr file");
        let mut command = Command::new(&self.binary);
        command
            .arg("--endpoint")
            .arg(&s.endpoint)
            .arg("--stream")
            .arg(&s.stream)
            .arg("--leases")
            .arg(&s.leases)
            .arg("--name")
            .arg(&instance)
            .arg("--log")
            .arg(s.log_dir.join(format!("{instance}.jsonl")))
            .arg("--lease-ms")
            .arg(s.lease.as_millis().to_string())
            .arg("--taker-ms")
            .arg(s.taker.as_millis().to_string())
            .arg("--checkpoint-every-ms")
            .arg(s.checkpoint_interval.as_millis().to_string());
        if s.processor_faults.any() {
            command.args(s.processor_faults.for_instance(&instance).to_args());
        }
        if let Some(table) = &s.table {
            command.arg("--table").arg(table);
        }
        if let Some(name) = &s.application_name {
            command.arg("--application-name").arg(name);
        }
        // Injected panics print a line each to stderr, not a backtrace.
        let child = command
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start kcl-test-worker");
        self.child = Some(child);
        self.stopped = false;
    }

    /// SIGKILL; returns the wall time (µs) just after the process was gone.
    pub fn kill(&mut self) -> u64 {
        let mut child = self.child.take().expect("the worker is running");
        child.kill().expect("SIGKILL the worker");
        let _ = child.wait();
        self.stopped = false;
        wall_micros()
    }

    /// Starts a killed worker again as its next incarnation.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.instance());
        self.incarnation += 1;
        self.spawn();
    }

    /// SIGSTOP; returns the wall time (µs) just after the signal was sent.
    pub fn pause(&mut self) -> u64 {
        let pid = self.child.as_ref().expect("the worker is running").id();
        send_signal(pid, "STOP");
        self.stopped = true;
        wall_micros()
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        let pid = self.child.as_ref().expect("the worker is running").id();
        send_signal(pid, "CONT");
        self.stopped = false;
    }

    /// Fails the test if the process exited on its own (a crash), naming its stderr.
    pub fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            let stderr = self
                .settings
                .log_dir
                .join(format!("{}.stderr", self.instance()));
            panic!(
                "worker {} exited by itself ({status}): {}",
                self.instance(),
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
