//! The Go swarm pattern on filch: agents as tasks talking over channels, driven by a
//! ticker, their reports fanned in to one channel, events broadcast without blocking, and
//! the agents stopped by closing a done channel. Then the same swarm as shared atomic
//! state updated in parallel chunks, which must agree with it bit for bit.
//!
//! ```text
//! cargo run --release --example swarm [AGENTS]     (default 2000)
//! ```
//!
//! The swarm seeks consensus: at each step every agent becomes the mean of itself and four
//! fixed pseudo-random neighbours (a small-world topology), and the swarm has converged
//! when the spread (max − min) is below 1e-9 of the initial spread.
//!
//! Part 1, agents and channels. What each Go form becomes:
//!
//! | Go | here |
//! |---|---|
//! | `go agent(id, inbox, reports, done)`, one per agent | `sched.spawn_async(agent(…))`, one per agent |
//! | `select { case r := <-inbox: …; case <-done: return }` | `chan::select().recv(&inbox, …).recv(&done, …).await` |
//! | `ticker := time.NewTicker(d)`; `<-ticker.C` | a task feeding an `interval(d)` into a channel of one, dropping a tick nobody is ready for, as Go's ticker does |
//! | fan-out: `inbox[i] <- round` | `inboxes[i].send(round).await` |
//! | fan-in: every agent writes to one `reports` channel | a clone of one `Sender` per agent |
//! | `case <-time.After(d): return errStuck` | the select's `.timeout(d, …)` / `.deadline(t, …)` |
//! | `select { case l <- ev: default: }` (drop if full) | `chan::select().send(&events, ev, …).default(…)` |
//! | `close(done)`; `wg.Wait()` | `done.close()`; awaiting every agent's handle |
//! | `ticker.Stop()` | dropping the tick receiver; the ticker task ends at its next tick |
//!
//! The coordinator is the program's main future (`block_on`); agents, the ticker and the
//! event monitor are async tasks, so a thousand waiting agents hold no thread.
//!
//! Part 2, Go's parallel update: the agents' values as `f64` bits in `AtomicU64`s, a step
//! updated in parallel chunks with `for_each_chunk`, whose return (every chunk done) is
//! the barrier between steps, as `wg.Wait()` is in Go.
//!
//! Checked: every step gets exactly one report from each agent, for that step, equal bit
//! for bit to a sequential run of the same rule; every round sent was handled once (each
//! agent handled one per step); the events delivered plus those dropped are the steps, in
//! order, with a spread that never grows; the swarm converges inside its initial range;
//! part 2 converges in the same number of steps to the same bits.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use filch::chan::{self, Receiver, Sender, TrySendError};
use filch::time::interval;
use filch::Scheduler;

const NEIGHBOURS: usize = 4;
const MAX_STEPS: usize = 200;
/// The ticker's period: one step per tick.
const TICK: Duration = Duration::from_millis(1);
/// How long a step may take before the swarm is declared stuck (a lost message, not a
/// slow machine).
const STUCK: Duration = Duration::from_secs(60);

fn hash(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Agent `i`'s neighbours: fixed, pseudo-random.
fn neighbours(i: usize, n: usize) -> [usize; NEIGHBOURS] {
    std::array::from_fn(|k| (hash((i * NEIGHBOURS + k) as u64) % n as u64) as usize)
}

fn initial(i: usize) -> f64 {
    (hash(i as u64 ^ 0xABCD) % 1_000_000) as f64 / 1000.0
}

/// The update rule: the mean of an agent and its neighbours' values, summed in this order
/// everywhere so that every run of it gives the same bits.
fn mean(own: f64, neighbours: [f64; NEIGHBOURS]) -> f64 {
    let mut sum = own;
    for v in neighbours {
        sum += v;
    }
    sum / (NEIGHBOURS + 1) as f64
}

fn spread(values: &[f64]) -> f64 {
    let (lo, hi) =
        values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    hi - lo
}

/// One step's message to an agent: its neighbours' values from the last step.
struct Round {
    step: usize,
    neighbours: [f64; NEIGHBOURS],
}

/// An agent's answer: its new value.
struct Report {
    id: usize,
    step: usize,
    value: f64,
}

/// What the coordinator broadcasts after each step.
struct Event {
    step: usize,
    spread: f64,
}

/// One agent: wait for a round or for the end; returns how many rounds it handled.
async fn agent(id: usize, inbox: Receiver<Round>, reports: Sender<Report>, done: Receiver<()>) -> usize {
    let mut value = initial(id);
    let mut handled = 0;
    loop {
        // A closed `done` is ready at once, as a closed channel is in Go.
        let round = chan::select().recv(&inbox, |r| r.ok()).recv(&done, |_| None).await;
        let Some(round) = round else { return handled };
        handled += 1;
        value = mean(value, round.neighbours);
        let report = Report { id, step: round.step, value };
        reports.send(report).await.unwrap_or_else(|_| unreachable!("the coordinator collects every step"));
    }
}

/// Go's `time.NewTicker(period)`: a channel of one, fed by an interval; a tick the reader
/// is not ready for is dropped. The task ends at the first tick after the receiver is gone.
fn ticker(sched: &Scheduler, period: Duration) -> (Receiver<Instant>, filch::JoinHandle<()>) {
    let (tx, rx) = chan::bounded(1);
    let task = sched.spawn_async(async move {
        let mut ticks = interval(period);
        loop {
            let t = ticks.tick().await;
            if let Err(TrySendError::Closed(_)) = tx.try_send(t) {
                return;
            }
        }
    });
    (rx, task)
}

/// Part 1: returns the converged values and the number of steps.
fn agents_and_channels(sched: &Scheduler, n: usize) -> (Vec<f64>, usize) {
    let (reports_tx, reports) = chan::bounded::<Report>(64);
    let (done, done_rx) = chan::bounded::<()>(0);
    let mut inboxes = Vec::with_capacity(n);
    let mut agents = Vec::with_capacity(n);
    for id in 0..n {
        // One round per step, taken before the agent reports: a send never waits.
        let (inbox, inbox_rx) = chan::bounded::<Round>(1);
        inboxes.push(inbox);
        agents.push(sched.spawn_async(agent(id, inbox_rx, reports_tx.clone(), done_rx.clone())));
    }
    drop((reports_tx, done_rx));
    // The monitor takes what events it can; the coordinator never waits for it.
    let (events, events_rx) = chan::bounded::<Event>(4);
    let monitor = sched.spawn_async(async move {
        let (mut seen, mut last) = (0usize, None::<Event>);
        while let Some(e) = events_rx.next().await {
            if let Some(last) = &last {
                assert!(e.step > last.step, "events in order");
                // A mean never leaves the range of what it averages; rounding may add an
                // ulp or two (values are below 1000, where an ulp is about 1e-13).
                assert!(e.spread <= last.spread + 1e-12, "the spread never grows");
            }
            seen += 1;
            last = Some(e);
        }
        seen
    });
    let (ticks, ticker_task) = ticker(sched, TICK);

    let (values, steps, dropped) = sched.block_on(async {
        let mut values: Vec<f64> = (0..n).map(initial).collect();
        let mut reference = values.clone();
        let spread0 = spread(&values);
        let (mut steps, mut dropped) = (0, 0);
        loop {
            chan::select()
                .recv(&ticks, |t| t.expect("the ticker runs until we drop its channel"))
                .timeout(STUCK, || panic!("no tick within {STUCK:?}"))
                .await;
            // Fan-out: each agent gets its neighbours' values from the last step.
            for (i, inbox) in inboxes.iter().enumerate() {
                let round = Round { step: steps, neighbours: neighbours(i, n).map(|j| values[j]) };
                inbox.send(round).await.unwrap_or_else(|_| unreachable!("agents run until done"));
            }
            // Fan-in: one report per agent, within a deadline.
            let deadline = Instant::now() + STUCK;
            let mut next = vec![None; n];
            for _ in 0..n {
                let r = chan::select()
                    .recv(&reports, |r| r.expect("the agents hold their senders"))
                    .deadline(deadline, || panic!("step {steps}: a report is missing after {STUCK:?}"))
                    .await;
                assert_eq!(r.step, steps, "agent {}: a report for another step", r.id);
                assert!(next[r.id].replace(r.value).is_none(), "agent {}: two reports in step {steps}", r.id);
            }
            values = next.into_iter().map(|v| v.expect("n reports, no duplicate: one per agent")).collect();
            steps += 1;
            reference = (0..n).map(|i| mean(reference[i], neighbours(i, n).map(|j| reference[j]))).collect();
            assert!(
                values.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
                "step {steps}: the agents' values differ from a sequential run"
            );
            // Broadcast without blocking: a full monitor misses this event.
            let event = Event { step: steps, spread: spread(&values) };
            let converged = event.spread < spread0 * 1e-9;
            dropped += chan::select().send(&events, event, |_| 0).default(|| 1).await;
            if converged {
                break;
            }
            assert!(steps < MAX_STEPS, "no convergence within {MAX_STEPS} steps");
        }
        // Shutdown: close `done`, stop the ticker, wait for every agent.
        done.close();
        drop(ticks);
        let mut handled = 0;
        for a in agents {
            let h = a.await.expect("agents do not panic");
            assert_eq!(h, steps, "every agent handled one round per step");
            handled += h;
        }
        assert_eq!(handled, n * steps, "every round sent was handled once");
        ticker_task.await.expect("the ticker stops");
        (values, steps, dropped)
    });
    drop(events);
    let delivered = monitor.join().expect("the monitor's checks passed");
    assert_eq!(delivered + dropped, steps, "every event delivered or dropped, once");
    println!("swarm, part 1: {n} agents as tasks, {steps} ticks, {delivered} events seen, {dropped} dropped");
    (values, steps)
}

/// Part 2: the same rule on shared atomic state, one parallel pass per step.
fn parallel_update(sched: &Scheduler, n: usize) -> (Vec<f64>, usize) {
    const CHUNK: usize = 128;
    // Two buffers: step k reads `bufs[k % 2]` and writes the other.
    let bufs: [Vec<AtomicU64>; 2] =
        std::array::from_fn(|_| (0..n).map(|i| AtomicU64::new(initial(i).to_bits())).collect());
    let spread0 = spread(&(0..n).map(initial).collect::<Vec<_>>());
    let mut steps = 0;
    loop {
        let (prev, next) = (&bufs[steps % 2], &bufs[(steps + 1) % 2]);
        let read = |j: usize| f64::from_bits(prev[j].load(Relaxed));
        // Relaxed suffices: the end of `for_each_chunk` (every chunk joined) orders this
        // step's writes before the next step's reads.
        sched.for_each_chunk(next, CHUNK, |c, agents| {
            for (k, agent) in agents.iter().enumerate() {
                let i = c * CHUNK + k;
                agent.store(mean(read(i), neighbours(i, n).map(read)).to_bits(), Relaxed);
            }
        });
        // ← the barrier: every agent of this step is updated.
        steps += 1;
        let values: Vec<f64> = next.iter().map(|a| f64::from_bits(a.load(Relaxed))).collect();
        if spread(&values) < spread0 * 1e-9 {
            return (values, steps);
        }
        assert!(steps < MAX_STEPS, "no convergence within {MAX_STEPS} steps");
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&n| n >= 2).unwrap_or(2_000);
    let sched = Scheduler::builder().thread_name("swarm").build().expect("default settings are valid");
    let started = Instant::now();
    let (values, steps) = agents_and_channels(&sched, n);
    let part1 = started.elapsed();
    let (lo, hi) =
        (0..n).map(initial).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    let consensus = values[0];
    assert!((lo..=hi).contains(&consensus), "consensus {consensus} outside [{lo}, {hi}]");

    let started = Instant::now();
    let (shared, shared_steps) = parallel_update(&sched, n);
    let part2 = started.elapsed();
    assert_eq!(shared_steps, steps, "both swarms converge in the same number of steps");
    assert!(
        shared.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()),
        "both swarms reach the same values, bit for bit"
    );
    println!(
        "swarm: {n} agents converged in {steps} steps to {consensus:.6} ({part1:.1?} as tasks on a \
         {TICK:?} ticker, {part2:.1?} as parallel chunks)"
    );
    println!("{}", sched.stats());
}
