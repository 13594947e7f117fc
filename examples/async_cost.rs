//! Per-operation cost of async tasks, filch or tokio, for instruction counts under
//! callgrind (and a rough ns figure on stderr):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     target/release/examples/async_cost N SYSTEM WORKLOAD [WORKERS] [POOL]
//! ```
//!
//! `SYSTEM` is `filch` or `tokio`; `WORKLOAD` one of
//! - `yield`: one task yields N times (`filch::future::yield_now`, `tokio::task::yield_now`);
//! - `skynet`: async skynet with N leaves, every node awaiting its 10 children's handles
//!   (the `async-skynet` row of `make compare`);
//! - `sleep`: one task spawns N detached tasks that each sleep 1 ms and count down a
//!   countdown the main thread waits on (the `sleep` row and the `timers` bench).
//!
//! `WORKERS` defaults to 1, `POOL` (filch's task pool slots) to the default 8192; with
//! `FILCH_STATS` set, filch's totals (`Scheduler::stats`: heap fallbacks, spills, …) go to
//! stderr after the run. Run at two values of N and divide the difference of the
//! instruction totals by the difference of the N (of the task counts, for skynet: 1.111 ×
//! N) for the cost of one operation.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[path = "../benches/common/workloads.rs"]
mod workloads;

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let (Some(n), Some(system), Some(workload)) =
        (arg(1).and_then(|a| a.parse::<u64>().ok()), arg(2), arg(3))
    else {
        eprintln!("usage: async_cost N filch|tokio yield|skynet|sleep [WORKERS] [POOL]");
        std::process::exit(2);
    };
    let workers: usize = arg(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let pool: usize = arg(5).and_then(|a| a.parse().ok()).unwrap_or(8192);
    let cd: &'static Countdown = Box::leak(Box::new(Countdown::new(if workload == "sleep" { n } else { 0 })));
    // Timed: the workload only; the runtime is built before and dropped after (a big pool
    // takes a while to prepare).
    let elapsed = match system.as_str() {
        "filch" => {
            let s = filch::Scheduler::builder().workers(workers).pool_capacity(pool).build().unwrap();
            let t0 = Instant::now();
            s.spawn_async(filch_workload(workload.clone(), n, cd)).join().unwrap();
            cd.wait();
            let elapsed = t0.elapsed();
            if std::env::var_os("FILCH_STATS").is_some() {
                eprintln!("{:#?}", s.stats().total);
            }
            elapsed
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_time()
                .build()
                .unwrap();
            let t0 = Instant::now();
            rt.block_on(rt.spawn(tokio_workload(workload.clone(), n, cd))).unwrap();
            cd.wait();
            t0.elapsed()
        }
        other => {
            eprintln!("async_cost: unknown system {other:?}");
            std::process::exit(2);
        }
    };
    eprintln!("{system} {workload} {n}: {:.1} ns per unit", elapsed.as_nanos() as f64 / n as f64);
}

/// Counts tasks down to zero; `wait` blocks the main thread until then.
struct Countdown {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Countdown {
    fn new(n: u64) -> Countdown {
        Countdown { left: AtomicUsize::new(n as usize), done: Mutex::new(n == 0), cv: Condvar::new() }
    }

    fn count_down(&self) {
        // AcqRel: the last decrement sees every earlier task's writes before it signals.
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self) {
        let mut d = self.done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

/// Runs as one task on the scheduler, as [`tokio_workload`] does on tokio's.
async fn filch_workload(workload: String, n: u64, cd: &'static Countdown) {
    match workload.as_str() {
        "yield" => {
            for i in 0..n {
                std::hint::black_box(i);
                filch::future::yield_now().await;
            }
        }
        "skynet" => {
            let sum = filch::spawn_async(workloads::skynet_async_filch(0, n)).await.unwrap();
            assert_eq!(sum, n * (n - 1) / 2);
        }
        "sleep" => {
            for _ in 0..n {
                filch::spawn_async_detached(async move {
                    filch::time::sleep(Duration::from_millis(1)).await;
                    cd.count_down();
                })
                .unwrap();
            }
        }
        other => panic!("async_cost: unknown workload {other:?}"),
    }
}

async fn tokio_workload(workload: String, n: u64, cd: &'static Countdown) {
    match workload.as_str() {
        "yield" => {
            for i in 0..n {
                std::hint::black_box(i);
                tokio::task::yield_now().await;
            }
        }
        "skynet" => {
            let sum = tokio::spawn(workloads::skynet_async_tokio(0, n)).await.unwrap();
            assert_eq!(sum, n * (n - 1) / 2);
        }
        "sleep" => {
            for _ in 0..n {
                drop(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    cd.count_down();
                }));
            }
        }
        other => panic!("async_cost: unknown workload {other:?}"),
    }
}
