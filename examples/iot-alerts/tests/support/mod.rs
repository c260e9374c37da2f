//! What the process tests share: the binary, children that die with the test, and waiting.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `iot-alerts` binary cargo built for these tests.
pub const IOT_ALERTS: &str = env!("CARGO_BIN_EXE_iot-alerts");

/// A child process, killed when dropped (a failing test leaves nothing running).
pub struct Process {
    pub name: String,
    pub child: Child,
}

impl Process {
    /// Starts `iot-alerts ARGS`, standard error to `log` (shown when a test fails).
    pub fn start(name: &str, args: &[&str], stdout: Stdio, log: &Path) -> Process {
        let stderr = std::fs::File::create(log).expect("create the log file");
        let child = Command::new(IOT_ALERTS)
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        Process {
            name: name.to_owned(),
            child,
        }
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGSTOP: the process keeps everything it holds but does nothing more.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {}", self.name);
    }

    /// Sends SIGKILL (a crash: no checkpoint, no release) and reaps the process.
    pub fn crash(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{} still running after {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The contents of a log file, for failure messages.
pub fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
