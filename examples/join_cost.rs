//! `join` cost through the free function and through `Scheduler::join`, for instruction
//! counts under callgrind (one worker, so nothing is stolen and the count is exact):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     target/release/examples/join_cost 25 sched
//! ```
//!
//! Runs fib(n) by recursive `join` down to n < 2 on a one-worker scheduler: `free` through
//! `filch::join`, `sched` through `Scheduler::join` on the scheduler passed down by
//! reference, `free-ref` through `filch::join` with the scheduler passed down unused (the
//! closures then capture what `sched`'s capture). An optional third argument sets the
//! worker count (default 1). Prints the
//! time per join; divide callgrind's instruction total difference between two n by the
//! difference in joins (fib(n+1) − 1 joins for n ≥ 1) for instructions per join.
use std::time::Instant;

fn fib_free(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = filch::join(|| fib_free(n - 1), || fib_free(n - 2));
    a + b
}

/// `fib_free` with the scheduler passed down as `fib_sched` passes it, unused: the same
/// two-word closures as `sched`, through `filch::join`. The difference between `sched` and
/// this mode is what `Scheduler::join` itself costs over `filch::join`.
// The parameter is only passed down on purpose: it is what makes the closures as large.
#[allow(clippy::only_used_in_recursion)]
fn fib_free_ref(s: &filch::Scheduler, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = filch::join(|| fib_free_ref(s, n - 1), || fib_free_ref(s, n - 2));
    a + b
}

fn fib_sched(s: &filch::Scheduler, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = s.join(|| fib_sched(s, n - 1), || fib_sched(s, n - 2));
    a + b
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "free".into());
    let workers: usize = std::env::args().nth(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let s = filch::Scheduler::builder().workers(workers).pin(false).build().unwrap();
    let start = Instant::now();
    let v = match mode.as_str() {
        "free" => s.install(|| fib_free(n)),
        "sched" => s.install(|| fib_sched(&s, n)),
        "free-ref" => s.install(|| fib_free_ref(&s, n)),
        other => panic!("mode is `free`, `sched` or `free-ref`, not {other:?}"),
    };
    let elapsed = start.elapsed();
    // fib(n) leaves are the calls with n < 2; a join per inner call: fib(n+1) - 1 of them.
    let joins = {
        let (mut a, mut b) = (0u64, 1u64);
        for _ in 0..=n {
            (a, b) = (b, a + b);
        }
        a.saturating_sub(1)
    };
    assert!(v > 0 || n == 0);
    println!(
        "fib({n}) = {v}: {:.1} ns per join ({joins} joins, {mode})",
        elapsed.as_nanos() as f64 / joins as f64
    );
}
