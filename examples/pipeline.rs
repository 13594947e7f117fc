//! The Go pipeline pattern on filch: a generator, stages connected by bounded channels, a
//! stage fanned out over several workers and fanned back in, and a collector; closing
//! flows down the pipeline and ends every stage, and a consumer that stops early stops
//! everything upstream of it.
//!
//! ```text
//! cargo run --release --example pipeline [ITEMS] [WORKERS]     (default 500, 3)
//! ```
//!
//! generator → validate → transform (WORKERS tasks) → enrich → collector. What each Go form
//! becomes:
//!
//! | Go | here |
//! |---|---|
//! | `out := make(chan T, 16)` between two stages | `chan::bounded(16)` |
//! | `go func() { defer close(out); for v := range in { out <- f(v) } }()` | a task: `while let Some(v) = input.next().await { output.send(f(v)).await }`; dropping `output` at its end is `close(out)` |
//! | the same as a goroutine that blocks | a closure task: `for v in &input { output.send_blocking(f(v)) }` |
//! | fan-out: W goroutines ranging over one channel | W tasks holding clones of one `Receiver` |
//! | fan-in: `merge(cs...)`, one goroutine per input | W clones of one `Sender`: the channel closes when the last is dropped |
//! | `for r := range results` in the last stage | the collector task |
//! | `close(done)` to stop upstream stages early | the collector drops its receiver: the next send upstream fails, that stage returns and drops its own receiver, and so on up |
//! | `GOMAXPROCS=1` | `Scheduler::builder().workers(1)` |
//!
//! The pipeline runs four ways: async stages and blocking closure stages, each on the
//! default scheduler and on a one-worker scheduler. On one worker a blocking stage hands
//! its worker to a spare thread while it waits, so the other stages keep running.
//!
//! Checked, every way: the collector gets every item exactly once and the sum of a
//! sequential run; every stage saw every item; each stage ended because its input closed.
//! With an early stop: the collector gets exactly the items it asked for, every stage
//! ends, and the generator stopped early, having produced no more than the
//! channels and stages between it and the collector could hold.
use std::time::Instant;

use filch::chan::{self, Receiver, Sender};
use filch::{JoinHandle, Scheduler};

/// Each channel's buffer.
const BUF: usize = 16;
/// How many results the early-stopping collector takes.
const TAKE: u64 = 10;

type Item = (u64, u64);

fn validate((item, _): Item) -> Item {
    (item, item.wrapping_mul(2_654_435_761) % 1_000_003)
}

fn transform((item, x): Item) -> Item {
    let mut x = x;
    for _ in 0..3_000 {
        x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407),
        );
    }
    (item, x)
}

fn enrich((item, x): Item) -> Item {
    (item, x ^ (x >> 29))
}

fn store(x: u64) -> u64 {
    x.count_ones() as u64 + (x >> 60)
}

#[derive(Clone, Copy, Debug)]
enum Style {
    /// Async tasks awaiting their channels.
    Async,
    /// Closure tasks blocking on their channels.
    Blocking,
}

/// One stage: forwards `f(v)` for every `v` from `input` until `input` is closed and
/// drained, or `output` is closed (nobody downstream any more). Returns how many it
/// forwarded. Its `output` clone is dropped when it returns.
fn stage(
    sched: &Scheduler,
    style: Style,
    input: Receiver<Item>,
    output: Sender<Item>,
    f: fn(Item) -> Item,
) -> JoinHandle<u64> {
    match style {
        Style::Async => sched.spawn_async(async move {
            let mut forwarded = 0;
            while let Some(v) = input.next().await {
                if output.send(f(v)).await.is_err() {
                    break;
                }
                forwarded += 1;
            }
            forwarded
        }),
        Style::Blocking => sched.spawn(move || {
            let mut forwarded = 0;
            for v in &input {
                if output.send_blocking(f(v)).is_err() {
                    break;
                }
                forwarded += 1;
            }
            forwarded
        }),
    }
}

/// The generator: sends `(i, 0)` for `i` in `0..items`, stopping early if nobody listens
/// any more. Returns how many it sent.
fn generator(sched: &Scheduler, style: Style, items: u64, output: Sender<Item>) -> JoinHandle<u64> {
    match style {
        Style::Async => sched.spawn_async(async move {
            let mut sent = 0;
            for i in 0..items {
                if output.send((i, 0)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        }),
        Style::Blocking => sched.spawn(move || {
            let mut sent = 0;
            for i in 0..items {
                if output.send_blocking((i, 0)).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        }),
    }
}

/// What one run of the pipeline saw.
struct Run {
    /// Items forwarded by the generator, validate, the transform workers together, enrich.
    forwarded: [u64; 4],
    /// Items the collector took, and the sum of their stored values.
    taken: u64,
    sum: u64,
}

/// Builds and runs the pipeline; the collector takes at most `take` items.
fn run(sched: &Scheduler, style: Style, items: u64, workers: usize, take: u64) -> Run {
    let (gen_tx, gen_rx) = chan::bounded(BUF);
    let (valid_tx, valid_rx) = chan::bounded(BUF);
    let (transformed_tx, transformed_rx) = chan::bounded(BUF);
    let (enriched_tx, enriched_rx) = chan::bounded::<Item>(BUF);
    let generated = generator(sched, style, items, gen_tx);
    let validated = stage(sched, style, gen_rx, valid_tx, validate);
    // Fan-out over `workers` tasks, fan-in on one channel.
    let transformed: Vec<_> = (0..workers)
        .map(|_| stage(sched, style, valid_rx.clone(), transformed_tx.clone(), transform))
        .collect();
    drop((valid_rx, transformed_tx)); // the workers hold the only clones now
    let enriched = stage(sched, style, transformed_rx, enriched_tx, enrich);
    let collector = sched.spawn_async(async move {
        let mut seen = vec![false; items as usize];
        let (mut taken, mut sum) = (0, 0);
        while taken < take {
            let Some((item, x)) = enriched_rx.next().await else { break };
            assert!(!std::mem::replace(&mut seen[item as usize], true), "item {item} arrived twice");
            taken += 1;
            sum += store(x);
        }
        (taken, sum) // dropping `enriched_rx` here stops the stages upstream, if any run
    });

    let (taken, sum) = collector.join().expect("the collector's checks passed");
    let join = |h: JoinHandle<u64>| h.join().expect("stages do not panic");
    let forwarded =
        [join(generated), join(validated), transformed.into_iter().map(join).sum(), join(enriched)];
    Run { forwarded, taken, sum }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let items = args.next().flatten().filter(|&n| n >= 200).unwrap_or(500);
    let workers = args.next().flatten().filter(|&w| w >= 1).unwrap_or(3) as usize;
    let expected: u64 = (0..items).map(|i| store(enrich(transform(validate((i, 0)))).1)).sum();
    let default = Scheduler::builder().thread_name("pipeline").build().expect("valid settings");
    let one = Scheduler::builder().workers(1).thread_name("pipeline-1").build().expect("valid settings");

    for (sched, threads) in [(&default, "default"), (&one, "one worker")] {
        for style in [Style::Async, Style::Blocking] {
            // To the end: closing flows down from the generator and ends every stage.
            let started = Instant::now();
            let r = run(sched, style, items, workers, u64::MAX);
            let elapsed = started.elapsed();
            assert_eq!(r.taken, items, "{style:?}, {threads}: every item arrived");
            assert_eq!(r.sum, expected, "{style:?}, {threads}: the sum of a sequential run");
            assert_eq!(r.forwarded, [items; 4], "{style:?}, {threads}: every stage saw every item");

            // An early stop: the collector takes TAKE items and leaves.
            let s = run(sched, style, items, workers, TAKE);
            assert_eq!(s.taken, TAKE, "{style:?}, {threads}: the collector took what it asked for");
            // Past the TAKE items, a value can only be in a channel's buffer or in a
            // stage's hands (the one it failed to send) when the stop reaches it.
            let holders = 1 + workers as u64 + 1; // validate, the transform workers, enrich
            let bound = TAKE + 4 * BUF as u64 + holders;
            assert!(
                s.forwarded[0] <= bound,
                "{style:?}, {threads}: the generator made {} items after an early stop (bound {bound})",
                s.forwarded[0]
            );
            assert!(s.forwarded.windows(2).all(|w| w[0] >= w[1]), "a stage forwards at most what it got");
            println!(
                "pipeline, {style:?} stages, {threads}: {items} items, {workers} transform tasks, {elapsed:.1?}, \
                 sum {}; stopped after {TAKE}: the generator made {}",
                r.sum, s.forwarded[0]
            );
        }
    }
    println!("default scheduler:\n{}\none worker:\n{}", default.stats(), one.stats());
}
