//! Per-message cost of the channel workloads (`benches/chan.rs`, `make compare`'s `chan-*`
//! rows), for instruction counts under callgrind and wall time on stderr:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     target/release/examples/chan_cost N SYSTEM WORKLOAD [WORKERS] [REPS]
//! ```
//!
//! `SYSTEM` is `filch`, `filch-sync` (ping-pong only), `tokio`, `crossbeam`, `flume` or
//! `flume-async` (flume's async API on filch's tasks); `WORKLOAD` one of `pingpong`,
//! `pipeline`, `fanin` (N values from 1000 producers), `select`, `skynet` (N leaves),
//! `pool` (N jobs). `WORKERS` (filch's and tokio's) defaults to 2, `REPS` to 1: each rep
//! runs the workload once and prints its wall time per message to stderr; every result is
//! checked. With `FILCH_STATS` set, filch's totals (`Scheduler::stats`) go to stderr after
//! the run. For instructions per message, run at two values of N and divide the
//! difference of the totals by the difference of the N.
use std::time::Instant;

#[path = "../benches/common/chan_workloads.rs"]
mod chan_workloads;
use chan_workloads::*;

const FANIN_PRODUCERS: u64 = 1000;

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let (Some(n), Some(system), Some(workload)) =
        (arg(1).and_then(|a| a.parse::<u64>().ok()), arg(2), arg(3))
    else {
        eprintln!(
            "usage: chan_cost N filch|filch-sync|tokio|crossbeam|flume|flume-async \
             pingpong|pipeline|fanin|select|skynet|pool [WORKERS] [REPS]"
        );
        std::process::exit(2);
    };
    let workers: usize = arg(4).and_then(|a| a.parse().ok()).unwrap_or(2);
    let reps: usize = arg(5).and_then(|a| a.parse().ok()).unwrap_or(1);
    let want = match workload.as_str() {
        "pingpong" => pingpong_expected(n),
        "pipeline" => pipeline_expected(n),
        "fanin" => fanin_expected(FANIN_PRODUCERS, n / FANIN_PRODUCERS),
        "select" => select_expected(n),
        "skynet" => skynet_expected(n),
        "pool" => pool_expected(n),
        other => {
            eprintln!("chan_cost: unknown workload {other:?}");
            std::process::exit(2);
        }
    };
    let f = filch::Scheduler::builder().workers(workers).build().unwrap();
    let t =
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_time().build().unwrap();
    let per = n / FANIN_PRODUCERS;
    let run = || -> Option<u64> {
        Some(match (system.as_str(), workload.as_str()) {
            ("filch", "pingpong") => pingpong_filch(&f, n),
            ("filch", "pipeline") => pipeline_filch(&f, n, CAP),
            ("filch", "fanin") => fanin_filch(&f, FANIN_PRODUCERS, per, CAP),
            ("filch", "select") => select_filch(&f, n, CAP),
            ("filch", "skynet") => skynet_filch(&f, n),
            ("filch", "pool") => pool_filch(&f, n, POOL_WORKERS, CAP),
            ("filch-sync", "pingpong") => pingpong_filch_sync(&f, n),
            ("tokio", "pingpong") => pingpong_tokio(&t, n),
            ("tokio", "pipeline") => pipeline_tokio(&t, n, CAP),
            ("tokio", "fanin") => fanin_tokio(&t, FANIN_PRODUCERS, per, CAP),
            ("tokio", "select") => select_tokio(&t, n, CAP),
            ("tokio", "skynet") => skynet_tokio(&t, n),
            ("tokio", "pool") => pool_tokio(&t, n, POOL_WORKERS, CAP),
            ("crossbeam", "pingpong") => pingpong_crossbeam(n),
            ("crossbeam", "pipeline") => pipeline_crossbeam(n, CAP),
            ("crossbeam", "fanin") => fanin_crossbeam(FANIN_PRODUCERS, per, CAP),
            ("crossbeam", "select") => select_crossbeam(n, CAP),
            ("crossbeam", "skynet") => skynet_crossbeam(n),
            ("crossbeam", "pool") => pool_crossbeam(n, POOL_WORKERS, CAP),
            ("flume", "pingpong") => pingpong_flume(n),
            ("flume", "pipeline") => pipeline_flume(n, CAP),
            ("flume", "fanin") => fanin_flume(FANIN_PRODUCERS, per, CAP),
            ("flume", "select") => select_flume(n, CAP),
            ("flume", "skynet") => skynet_flume(n),
            ("flume", "pool") => pool_flume(n, POOL_WORKERS, CAP),
            ("flume-async", "pingpong") => pingpong_flume_async(&f, n),
            ("flume-async", "pipeline") => pipeline_flume_async(&f, n, CAP),
            ("flume-async", "fanin") => fanin_flume_async(&f, FANIN_PRODUCERS, per, CAP),
            ("flume-async", "skynet") => skynet_flume_async(&f, n),
            ("flume-async", "pool") => pool_flume_async(&f, n, POOL_WORKERS, CAP),
            _ => return None,
        })
    };
    for _ in 0..reps {
        let t0 = Instant::now();
        let Some(got) = run() else {
            eprintln!("chan_cost: {system} has no {workload} here");
            std::process::exit(2);
        };
        let ns = t0.elapsed().as_nanos() as f64;
        assert_eq!(got, want, "{system} {workload} {n}: wrong result");
        eprintln!(
            "{system} {workload} n={n} workers={workers}: {:.1} ms, {:.1} ns per message",
            ns / 1e6,
            ns / n as f64
        );
    }
    if std::env::var_os("FILCH_STATS").is_some() {
        eprintln!("{:#?}", f.stats().total);
    }
}
