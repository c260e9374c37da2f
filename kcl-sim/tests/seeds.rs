//! The simulation over many seeds (500 by default; `KCL_SIM_SEEDS=a..b` or `=n` for others), and
//! the check that a seed replays identically.

use std::ops::Range;

/// The seeds to run: `KCL_SIM_SEEDS` as `a..b` or a single seed, else `0..500`.
fn seeds() -> Range<u64> {
    let Ok(text) = std::env::var("KCL_SIM_SEEDS") else {
        return 0..500;
    };
    let parsed = match text.split_once("..") {
        Some((start, end)) => start
            .trim()
            .parse()
            .and_then(|start| Ok(start..end.trim().parse()?)),
        None => text.trim().parse().map(|seed: u64| seed..seed + 1),
    };
    parsed.unwrap_or_else(|error| {
        panic!("KCL_SIM_SEEDS={text:?} is not a seed or a range a..b: {error}")
    })
}

#[test]
fn every_seed_keeps_every_guarantee() {
    let seeds = seeds();
    if std::env::var_os("KCL_SIM_TRACE").is_some() {
        for seed in seeds.clone() {
            let report = kcl_sim::run_seed(seed);
            println!("{}", report.trace);
            println!("{report}");
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let summary = kcl_sim::run_seeds(seeds, threads);
    for failure in &summary.failures {
        eprintln!("{failure}");
    }
    println!("{summary}");
    assert!(
        summary.failures.is_empty(),
        "{} of {} seeds broke a guarantee (each printed above with its replay command)",
        summary.failures.len(),
        summary.seeds
    );
}

#[test]
fn a_seed_replays_identically() {
    for seed in [1, 2, 3] {
        let first = kcl_sim::run_seed(seed);
        let second = kcl_sim::run_seed(seed);
        assert_eq!(
            first.digest,
            second.digest,
            "seed {seed} ran differently the second time; compare the traces of `{}`",
            first.replay_command()
        );
    }
}
