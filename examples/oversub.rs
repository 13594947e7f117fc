//! Oversubscription: filch and rayon with more threads than cores, and two schedulers (two
//! rayon pools) working at once, against each system's right-sized time, in one process
//! (the three set-ups alternate round by round; each ratio is taken within a round).
//! Go is not in it: `make compare --workers N` runs every system, Go included, at any
//! worker count, but one scheduler at a time.
//!
//! ```text
//! cargo run --release --example oversub -- [ROUNDS]
//! ```
//!
//! Workloads: fib(30) by recursive `join`; skynet (1 M leaves, spawn + join handles for
//! filch, `scope` for rayon); a small tree (fib(18) by `join`, 4k joins, repeated 200
//! times: joins too small to amortize waking anyone). Set-ups, with C the usable cores:
//! `right` (C workers), `4x` (4·C workers, unpinned: filch turns pinning off itself when
//! workers outnumber the cores), and `two` (two C-worker schedulers, each running the
//! workload from its own thread at the same time: its time is the wall time for both,
//! halved, so that 1.0 means no loss against running them one after the other). Prints,
//! per workload and system, the median time of each set-up and its ratio to `right`
//! (bar: at most 1.5×), with the min–max over the rounds. Every result is checked.
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

#[path = "../benches/common/workloads.rs"]
mod workloads;
use workloads::*;

#[derive(Clone, Copy, PartialEq)]
enum Sys {
    Filch,
    Rayon,
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Fib,
    Skynet,
    SmallTree,
}

/// A pool of `workers` threads of `sys`, ready to run `work` (and check it).
enum Pool {
    Filch(filch::Scheduler),
    Rayon(rayon::ThreadPool),
}

impl Pool {
    fn new(sys: Sys, workers: usize) -> Pool {
        match sys {
            Sys::Filch => Pool::Filch(filch::Scheduler::builder().workers(workers).build().unwrap()),
            Sys::Rayon => Pool::Rayon(rayon::ThreadPoolBuilder::new().num_threads(workers).build().unwrap()),
        }
    }

    fn run(&self, work: Work) {
        match (self, work) {
            (Pool::Filch(s), Work::Fib) => assert_eq!(s.install(|| fib_filch(30)), 832_040),
            (Pool::Rayon(p), Work::Fib) => assert_eq!(p.install(|| fib_rayon(30)), 832_040),
            (Pool::Filch(s), Work::Skynet) => {
                assert_eq!(s.spawn(|| skynet_join_filch(0, 1_000_000)).join().unwrap(), SKYNET_SUM)
            }
            (Pool::Rayon(p), Work::Skynet) => {
                let out = AtomicU64::new(0);
                p.scope(|s| skynet_scope_rayon(s, &out, 0, 1_000_000));
                assert_eq!(out.into_inner(), SKYNET_SUM);
            }
            (Pool::Filch(s), Work::SmallTree) => {
                for _ in 0..200 {
                    assert_eq!(s.install(|| fib_filch(18)), 2584);
                }
            }
            (Pool::Rayon(p), Work::SmallTree) => {
                for _ in 0..200 {
                    assert_eq!(p.install(|| fib_rayon(18)), 2584);
                }
            }
        }
    }
}

/// One timed run of `work` on `sys` in set-up `setup` (0 right, 1 4x, 2 two at once).
fn time(sys: Sys, work: Work, setup: usize, cores: usize) -> Duration {
    match setup {
        0 | 1 => {
            let pool = Pool::new(sys, if setup == 0 { cores } else { 4 * cores });
            pool.run(work); // warm-up: threads started, pool slots touched
            let t = Instant::now();
            pool.run(work);
            t.elapsed()
        }
        _ => {
            let pools = [Pool::new(sys, cores), Pool::new(sys, cores)];
            for p in &pools {
                p.run(work);
            }
            let t = Instant::now();
            std::thread::scope(|s| {
                for p in &pools {
                    s.spawn(move || p.run(work));
                }
            });
            t.elapsed() / 2
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "oversubscription: {cores} cores, {rounds} rounds; ms per workload (two at once: wall time / 2)"
    );
    println!(
        "{:<11} {:<6} {:>16} {:>28} {:>28}",
        "workload", "system", "right", "4x workers (÷ right)", "two at once (÷ right)"
    );
    for (name, work) in [("fib(30)", Work::Fib), ("skynet-1m", Work::Skynet), ("small-tree", Work::SmallTree)]
    {
        for (sname, sys) in [("filch", Sys::Filch), ("rayon", Sys::Rayon)] {
            // [set-up][round], and each round's ratios to its own right-sized time.
            let mut ms = vec![Vec::new(); 3];
            let mut ratio = vec![Vec::new(); 3];
            for r in 0..rounds {
                let mut t = [0.0; 3];
                for k in 0..3 {
                    let setup = (k + r) % 3;
                    t[setup] = time(sys, work, setup, cores).as_secs_f64() * 1e3;
                }
                for s in 0..3 {
                    ms[s].push(t[s]);
                    ratio[s].push(t[s] / t[0]);
                }
            }
            let cell = |s: usize, ms: &mut [Vec<f64>], ratio: &mut [Vec<f64>]| {
                let lo = ratio[s].iter().copied().fold(f64::INFINITY, f64::min);
                let hi = ratio[s].iter().copied().fold(0.0, f64::max);
                format!("{:.1} ({:.2} [{lo:.2}–{hi:.2}])", median(&mut ms[s]), median(&mut ratio[s]))
            };
            let right = median(&mut ms[0].clone());
            println!(
                "{name:<11} {sname:<6} {right:>16.1} {:>28} {:>28}",
                cell(1, &mut ms, &mut ratio),
                cell(2, &mut ms, &mut ratio)
            );
        }
    }
}
