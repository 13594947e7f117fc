//! Timer lateness: how long after its deadline a sleeping task runs again, filch beside
//! tokio (and `std::thread::sleep` on plain threads, the operating system's own floor),
//! same process, same worker count, same sleeps.
//!
//! Each system gets a fresh runtime with 2 workers and otherwise nothing to do. 4 tasks
//! each sleep N times in a row (default 250, so 1000 sleeps) until a deadline drawn at
//! random between 0 and 10 ms ahead (the same sequence for every system), and record
//! `wake time − deadline`: the instant the task runs again minus the deadline it asked
//! for. The report gives the median, p90, p99 and the maximum, and how many woke before
//! their deadline (none should).
//!
//! `cargo run --release --example timers [N]` (`make bench` runs it).
use std::time::{Duration, Instant};

const WORKERS: usize = 2;
const SLEEPERS: usize = 4;
/// Deadlines are drawn from 0..MAX_SLEEP_US microseconds ahead.
const MAX_SLEEP_US: u64 = 10_000;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `i`th sleep of sleeper `s`: the same for every system.
fn duration(s: usize, i: usize) -> Duration {
    Duration::from_micros(splitmix64(((s as u64) << 32) | i as u64) % MAX_SLEEP_US)
}

/// Lateness of one wake-up in ns: negative when it woke before its deadline.
fn lateness(deadline: Instant) -> i64 {
    let now = Instant::now();
    match now.checked_duration_since(deadline) {
        Some(late) => late.as_nanos() as i64,
        None => -(deadline.duration_since(now).as_nanos() as i64),
    }
}

fn report(name: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    let early = v.iter().filter(|&&x| x < 0).count();
    let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)] as f64 / 1e3;
    println!(
        "{name:<26} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>7}",
        v.len(),
        pct(50),
        pct(90),
        pct(99),
        v[v.len() - 1] as f64 / 1e3,
        early
    );
}

fn filch_lateness(sleeps: usize) -> Vec<i64> {
    let sched = filch::Scheduler::builder().workers(WORKERS).build().unwrap();
    let handles: Vec<_> = (0..SLEEPERS)
        .map(|s| {
            sched.spawn_async(async move {
                let mut out = Vec::with_capacity(sleeps);
                for i in 0..sleeps {
                    let deadline = Instant::now() + duration(s, i);
                    filch::time::sleep_until(deadline).await;
                    out.push(lateness(deadline));
                }
                out
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

fn tokio_lateness(sleeps: usize) -> Vec<i64> {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_time().build().unwrap();
    let handles: Vec<_> = (0..SLEEPERS)
        .map(|s| {
            rt.spawn(async move {
                let mut out = Vec::with_capacity(sleeps);
                for i in 0..sleeps {
                    let deadline = Instant::now() + duration(s, i);
                    tokio::time::sleep_until(deadline.into()).await;
                    out.push(lateness(deadline));
                }
                out
            })
        })
        .collect();
    rt.block_on(async {
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    })
}

fn thread_lateness(sleeps: usize) -> Vec<i64> {
    let threads: Vec<_> = (0..SLEEPERS)
        .map(|s| {
            std::thread::spawn(move || {
                let mut out = Vec::with_capacity(sleeps);
                for i in 0..sleeps {
                    let deadline = Instant::now() + duration(s, i);
                    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    out.push(lateness(deadline));
                }
                out
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
}

fn main() {
    let sleeps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(250);
    println!(
        "timer lateness (wake time − deadline), µs: {WORKERS} workers, {SLEEPERS} tasks × {sleeps} sleeps of 0–{} ms",
        MAX_SLEEP_US / 1000
    );
    println!(
        "{:<26} {:>8} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "system", "sleeps", "median", "p90", "p99", "max", "early"
    );
    report("filch::time::sleep_until", filch_lateness(sleeps));
    report("tokio::time::sleep_until", tokio_lateness(sleeps));
    report("std::thread::sleep", thread_lateness(sleeps));
}
