//! Bad command-line values get a message naming the problem and a non-zero exit, before
//! anything is started.

mod support;

use std::process::Command;

use support::IOT_ALERTS;

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    let leases = "--leases=sqlite://unused.db";
    let cases: &[(&[&str], &str)] = &[
        (&["alerts"], "--leases"),
        (
            &["alerts", "--leases", "mysql://db"],
            "neither sqlite://PATH",
        ),
        (
            &["alerts", leases, "--endpoint", "127.0.0.1:4567"],
            "must start with http:// or https://",
        ),
        (
            &["alerts", leases, "--checkpoint-every", "0"],
            "0 is not in 1..",
        ),
        (
            &["alerts", leases, "--checkpoint-interval", "10"],
            "needs a unit",
        ),
        (
            &["alerts", leases, "--lease-duration", "0s"],
            "must be above zero",
        ),
        (&["alerts", leases, "--window", "5 parsecs"], "unknown unit"),
        (
            &["alerts", leases, "--threshold", "hot"],
            "not a temperature",
        ),
        (
            &["alerts", leases, "--initial-position", "middle"],
            "trim-horizon",
        ),
        (&["sensors", "--rate", "0"], "not a rate"),
        (&["sensors", "--sensors", "0"], "0 is not in 1.."),
        (
            &["sensors", "--duration", "5s", "--count", "10"],
            "cannot be used with",
        ),
        (&["sensors", "--count", "many"], "invalid value"),
        (&["demo", "--duration", "soon"], "not a duration"),
        (&["demo", "--rate=-5"], "not a rate"),
        (&["fly"], "unrecognized subcommand"),
    ];
    for (args, says) in cases {
        let output = Command::new(IOT_ALERTS)
            .args(*args)
            .output()
            .expect("run iot-alerts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
