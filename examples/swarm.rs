//! The Emerge pattern (seed 004): a swarm of agents whose atomic state is updated in
//! parallel chunks every step, with a phase barrier between steps and a convergence check.
//!
//! ```text
//! cargo run --release --example swarm [AGENTS]     (default 20000; the seed uses 100000)
//! ```
//!
//! Each agent holds its value as `f64` bits in an `AtomicU64` (lock-free state, as in the
//! seed). A step sets every agent to the mean of itself and four fixed pseudo-random
//! neighbours, reading the previous step's buffer and writing the next one, so a step's
//! result does not depend on the order agents are updated in. `for_each_chunk` updates the
//! agents in parallel chunks; it returns only when every chunk is done, and that return is
//! the phase barrier between steps (no agent reads a value from the step it is in). The
//! swarm has converged when the spread (max − min) is below 1e-9 of the initial spread.
//!
//! Checked: every step's parallel result equals, bit for bit, a sequential run of the same
//! rule; the swarm converges; the consensus lies within the initial range (every step takes
//! means, so values never leave it).
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const NEIGHBOURS: usize = 4;
const CHUNK: usize = 1024;
const MAX_STEPS: usize = 200;

fn hash(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Agent `i`'s neighbours: fixed, pseudo-random (a small-world topology).
fn neighbours(i: usize, n: usize) -> [usize; NEIGHBOURS] {
    std::array::from_fn(|k| (hash((i * NEIGHBOURS + k) as u64) % n as u64) as usize)
}

/// The update rule: the mean of an agent and its neighbours in `prev`.
fn next_value(i: usize, n: usize, prev: impl Fn(usize) -> f64) -> f64 {
    let mut sum = prev(i);
    for j in neighbours(i, n) {
        sum += prev(j);
    }
    sum / (NEIGHBOURS + 1) as f64
}

fn spread(values: impl Iterator<Item = f64>) -> f64 {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    hi - lo
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&n| n >= 2).unwrap_or(20_000);
    let sched = filch::Scheduler::builder().build().expect("default scheduler settings are valid");
    let init = |i: usize| (hash(i as u64 ^ 0xABCD) % 1_000_000) as f64 / 1000.0;
    // Two buffers of atomic agent state: step k reads `bufs[k % 2]`, writes the other.
    let bufs: [Vec<AtomicU64>; 2] =
        std::array::from_fn(|_| (0..n).map(|i| AtomicU64::new(init(i).to_bits())).collect());
    let mut reference: Vec<f64> = (0..n).map(init).collect();
    let (lo0, hi0) =
        reference.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let spread0 = hi0 - lo0;
    let started = std::time::Instant::now();
    let mut steps = 0;
    loop {
        let (prev, next) = (&bufs[steps % 2], &bufs[(steps + 1) % 2]);
        let read = |j: usize| f64::from_bits(prev[j].load(Relaxed));
        // One step, in parallel chunks. Relaxed suffices: the end of `for_each_chunk` (every
        // chunk joined) orders this step's writes before the next step's reads.
        sched.for_each_chunk(next, CHUNK, |c, agents| {
            for (k, agent) in agents.iter().enumerate() {
                agent.store(next_value(c * CHUNK + k, n, read).to_bits(), Relaxed);
            }
        });
        // ← phase barrier: every agent of this step is updated.
        steps += 1;
        reference = (0..n).map(|i| next_value(i, n, |j| reference[j])).collect();
        let now: Vec<f64> = next.iter().map(|a| f64::from_bits(a.load(Relaxed))).collect();
        assert!(
            now.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
            "step {steps}: parallel != sequential"
        );
        if spread(now.iter().copied()) < spread0 * 1e-9 {
            let consensus = now[0];
            assert!((lo0..=hi0).contains(&consensus), "consensus {consensus} outside [{lo0}, {hi0}]");
            println!(
                "swarm: {n} agents converged in {steps} steps ({:.1} ms with the sequential check) to {consensus:.6}",
                started.elapsed().as_secs_f64() * 1e3
            );
            break;
        }
        assert!(steps < MAX_STEPS, "no convergence within {MAX_STEPS} steps");
    }
    println!("{}", sched.stats());
}
