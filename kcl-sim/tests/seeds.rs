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

/// Seeds beyond the CI range that once broke a guarantee, each the first of its kind in a long
/// run: 634 (a handoff that timed out stole from a paused owner whose lease was still valid by
/// its own clock; the owner went on delivering a parent after its child started), 5608 (a
/// finished lease deleted while its shard was listed, leased again by a lagging shard sync) and
/// 20177 (retention deleted segments before the newer segment names were durable; a power cut
/// reopened the log empty and numbers were given again).
#[test]
fn seeds_that_once_broke_a_guarantee() {
    let failures: Vec<_> = [634, 5608, 20177]
        .into_iter()
        .map(kcl_sim::run_seed)
        .filter(|report| !report.passed())
        .collect();
    for failure in &failures {
        eprintln!("{failure}");
    }
    assert!(
        failures.is_empty(),
        "{} seeds broke a guarantee again",
        failures.len()
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
