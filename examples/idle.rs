//! Idle cost and wake-up latency, filch beside rayon (and filch with the seed's
//! `Idle::Yield`), same process, same worker count.
//!
//! - **idle CPU**: after a burst of 100k tasks ends, the CPU time (exact, from
//!   `CLOCK_PROCESS_CPUTIME_ID`) the whole process uses during the next second, as a percentage of one
//!   core. The main thread sleeps meanwhile, so the figure is the scheduler's.
//! - **wake latency**: with every worker parked (50 ms of idleness first), one task is
//!   spawned from outside; the time from just before the spawn call to the task's first
//!   instruction. Median and p99 over the trials.
//!
//! `cargo run --release --example idle [trials]` (default 200 trials).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const WORKERS: usize = 2;

/// CPU seconds this process's threads have used: `CLOCK_PROCESS_CPUTIME_ID`, exact, not
/// `getrusage`'s tick-sampled user and system times (see `compare/workloads.rs`).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec`; the call fills it and touches nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs a burst with `spawn`, then measures the next second's CPU use (% of one core).
fn idle_cpu(spawn: &dyn Fn(Box<dyn FnOnce() + Send>)) -> f64 {
    let n = 100_000;
    let left = Arc::new(AtomicUsize::new(n));
    let (tx, rx) = mpsc::channel();
    for _ in 0..n {
        let left = left.clone();
        let tx = tx.clone();
        spawn(Box::new(move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                tx.send(()).unwrap();
            }
        }));
    }
    rx.recv().unwrap();
    let c0 = cpu_seconds();
    std::thread::sleep(Duration::from_secs(1));
    (cpu_seconds() - c0) * 100.0
}

/// Median and p99 wake latency in microseconds.
fn wake_latency(trials: usize, spawn: &dyn Fn(Box<dyn FnOnce() + Send>)) -> (f64, f64) {
    let mut lat = Vec::with_capacity(trials);
    for _ in 0..trials {
        std::thread::sleep(Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        spawn(Box::new(move || tx.send(Instant::now()).unwrap()));
        let t1 = rx.recv().unwrap();
        lat.push(t1.duration_since(t0).as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    (lat[lat.len() / 2], lat[(lat.len() * 99 / 100).min(lat.len() - 1)])
}

fn main() {
    let trials: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    println!("workers: {WORKERS}, wake-latency trials: {trials}");
    println!(
        "{:<22} {:>16} {:>14} {:>14}",
        "scheduler", "idle CPU (%core)", "wake p50 (µs)", "wake p99 (µs)"
    );

    for (name, idle) in
        [("filch (Idle::Park)", filch::Idle::park()), ("filch (Idle::Yield)", filch::Idle::Yield)]
    {
        let s = filch::Scheduler::builder().workers(WORKERS).idle(idle).build().unwrap();
        let spawn = |f: Box<dyn FnOnce() + Send>| drop(s.spawn(f));
        let cpu = idle_cpu(&spawn);
        let (p50, p99) = if matches!(idle, filch::Idle::Yield) {
            (f64::NAN, f64::NAN)
        } else {
            wake_latency(trials, &spawn)
        };
        println!("{name:<22} {cpu:>16.2} {p50:>14.1} {p99:>14.1}");
        drop(s);
    }

    let pool = rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap();
    let spawn = |f: Box<dyn FnOnce() + Send>| pool.spawn(f);
    let cpu = idle_cpu(&spawn);
    let (p50, p99) = wake_latency(trials, &spawn);
    println!("{:<22} {cpu:>16.2} {p50:>14.1} {p99:>14.1}", "rayon");
}
