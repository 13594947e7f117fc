//! Fork-join overhead beside rayon and chili, same run, 2 workers each.
//!
//! - `tree_sum_{1k,16m}`: the sum of a perfect binary tree's node values (every value 1)
//!   by a `join` per node, 10 and 24 levels (1023 and 16,777,215 nodes): chili's own
//!   benchmark shape, where a heartbeat scheduler makes a join nearly free while nobody
//!   is idle. filch `join` inside `Scheduler::install`, `rayon::join` inside
//!   `ThreadPool::install`, chili `Scope::join` on a 2-thread `ThreadPool`'s scope.
//! - `nqueens_12`: the number of placements of 12 queens (14,200), the candidate columns
//!   of each row split in halves by `join` down to one column; filch and rayon.
//!
//! Every iteration checks its result.
use std::hint::black_box;
use std::num::NonZero;

use criterion::{criterion_group, criterion_main, Criterion};

const WORKERS: usize = 2;

/// A node of the summed tree; the tree is built once per size, outside the timing.
struct Node {
    value: u64,
    kids: Option<Box<(Node, Node)>>,
}

fn build(levels: u32) -> Node {
    Node { value: 1, kids: (levels > 1).then(|| Box::new((build(levels - 1), build(levels - 1)))) }
}

fn sum_filch(n: &Node) -> u64 {
    match &n.kids {
        None => n.value,
        Some(k) => {
            let (l, r) = filch::join(|| sum_filch(&k.0), || sum_filch(&k.1));
            n.value + l + r
        }
    }
}

fn sum_rayon(n: &Node) -> u64 {
    match &n.kids {
        None => n.value,
        Some(k) => {
            let (l, r) = rayon::join(|| sum_rayon(&k.0), || sum_rayon(&k.1));
            n.value + l + r
        }
    }
}

fn sum_chili(n: &Node, s: &mut chili::Scope<'_>) -> u64 {
    match &n.kids {
        None => n.value,
        Some(k) => {
            let (l, r) = s.join(|s| sum_chili(&k.0, s), |s| sum_chili(&k.1, s));
            n.value + l + r
        }
    }
}

fn tree_sum(c: &mut Criterion) {
    let f = filch::Scheduler::builder().workers(WORKERS).build().unwrap();
    let r = rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap();
    let ch = chili::ThreadPool::with_config(chili::Config {
        thread_count: NonZero::new(WORKERS),
        ..Default::default()
    });
    for (name, levels) in [("tree_sum_1k", 10u32), ("tree_sum_16m", 24)] {
        let tree = build(levels);
        let nodes = (1u64 << levels) - 1;
        let mut g = c.benchmark_group(name);
        if levels > 20 {
            g.sample_size(10);
        }
        g.bench_function("filch", |b| {
            b.iter(|| assert_eq!(f.install(|| sum_filch(black_box(&tree))), nodes))
        });
        g.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(r.install(|| sum_rayon(black_box(&tree))), nodes))
        });
        g.bench_function("chili", |b| {
            let mut scope = ch.scope();
            b.iter(|| assert_eq!(sum_chili(black_box(&tree), &mut scope), nodes))
        });
        g.finish();
    }
}

/// Whether a queen at (`row`, `col`) is safe from the queens placed in rows `0..row`
/// (`cols[i]` is row i's column).
fn safe(cols: &[u8], row: usize, col: u8) -> bool {
    cols[..row]
        .iter()
        .enumerate()
        .all(|(r, &c)| c != col && (row - r) as i32 != (i32::from(c) - i32::from(col)).abs())
}

/// Placements completing `cols[..row]`, trying columns `lo..hi` for row `row`, splitting
/// that range with `join` (filch or rayon, by `J`).
fn queens<J: Join>(cols: [u8; 12], row: usize, lo: u8, hi: u8) -> u64 {
    if hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (a, b) =
            J::join(move || queens::<J>(cols, row, lo, mid), move || queens::<J>(cols, row, mid, hi));
        return a + b;
    }
    if !safe(&cols, row, lo) {
        return 0;
    }
    if row + 1 == cols.len() {
        return 1;
    }
    let mut next = cols;
    next[row] = lo;
    queens::<J>(next, row + 1, 0, cols.len() as u8)
}

trait Join {
    fn join<A: FnOnce() -> u64 + Send, B: FnOnce() -> u64 + Send>(a: A, b: B) -> (u64, u64);
}

struct FilchJoin;
impl Join for FilchJoin {
    fn join<A: FnOnce() -> u64 + Send, B: FnOnce() -> u64 + Send>(a: A, b: B) -> (u64, u64) {
        filch::join(a, b)
    }
}

struct RayonJoin;
impl Join for RayonJoin {
    fn join<A: FnOnce() -> u64 + Send, B: FnOnce() -> u64 + Send>(a: A, b: B) -> (u64, u64) {
        rayon::join(a, b)
    }
}

fn nqueens(c: &mut Criterion) {
    let f = filch::Scheduler::builder().workers(WORKERS).build().unwrap();
    let r = rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap();
    let mut g = c.benchmark_group("nqueens_12");
    g.sample_size(10);
    g.bench_function("filch", |b| {
        b.iter(|| assert_eq!(f.install(|| queens::<FilchJoin>([0; 12], 0, 0, 12)), 14_200))
    });
    g.bench_function("rayon", |b| {
        b.iter(|| assert_eq!(r.install(|| queens::<RayonJoin>([0; 12], 0, 0, 12)), 14_200))
    });
    g.finish();
}

criterion_group!(benches, tree_sum, nqueens);
criterion_main!(benches);
