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
//! - `matmul_1024`: C = A·B for 1024×1024 `f64` matrices, recursive and blocked as in
//!   Cilk: each level splits the matrices in quadrants and runs the four products that
//!   write different quarters of C in parallel (`join` of `join`s), then the other four,
//!   down to 64×64 blocks multiplied in place; filch and rayon. The entries are small
//!   integers, so every sum is exact and the result is compared with a sequential product
//!   element by element.
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

const MM: usize = 1024;
const MM_LEAF: usize = 64;

/// A square block of a row-major `MM`×`MM` matrix: its top-left element.
#[derive(Clone, Copy)]
struct Block(*mut f64);

// SAFETY: a block is an address into a matrix that outlives the multiplication; the
// recursion hands out blocks so that no two tasks running at once write the same one.
unsafe impl Send for Block {}
// SAFETY: as above; a shared `Block` is only copied.
unsafe impl Sync for Block {}

impl Block {
    /// The quarter at (`r`, `c`) of this `n`×`n` block.
    fn quarter(self, r: usize, c: usize, n: usize) -> Block {
        // SAFETY: the quarter's first element is inside this block, inside the matrix.
        Block(unsafe { self.0.add((r * MM + c) * (n / 2)) })
    }
}

/// `c += a·b` for `n`×`n` blocks. Writes only `c`; reads `a` and `b`.
///
/// # Safety
///
/// The three blocks lie in live `MM`×`MM` matrices, and nothing else reads or writes `c`
/// (nor writes `a` or `b`) meanwhile.
unsafe fn mm_add<J: Join2>(c: Block, a: Block, b: Block, n: usize) {
    if n <= MM_LEAF {
        for i in 0..n {
            for k in 0..n {
                // SAFETY: every index is inside its block (the caller's contract).
                unsafe {
                    let aik = *a.0.add(i * MM + k);
                    let crow = c.0.add(i * MM);
                    let brow = b.0.add(k * MM);
                    for j in 0..n {
                        *crow.add(j) += aik * *brow.add(j);
                    }
                }
            }
        }
        return;
    }
    let h = n / 2;
    // The four products of each phase write the four different quarters of `c`.
    for k in 0..2 {
        let part = |r: usize, col: usize| {
            move || {
                // SAFETY: the quarters lie inside the caller's blocks; within a phase each
                // of the four tasks writes its own quarter (r, col) of `c`, and the phases
                // run one after the other.
                unsafe { mm_add::<J>(c.quarter(r, col, n), a.quarter(r, k, n), b.quarter(k, col, n), h) }
            }
        };
        J::join(|| J::join(part(0, 0), part(0, 1)), || J::join(part(1, 0), part(1, 1)));
    }
}

/// `join` for closures that return nothing, by scheduler.
trait Join2 {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B);
}

impl Join2 for FilchJoin {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
        filch::join(a, b);
    }
}

impl Join2 for RayonJoin {
    fn join<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
        rayon::join(a, b);
    }
}

/// A·B into a fresh matrix.
fn matmul<J: Join2>(a: &mut [f64], b: &mut [f64]) -> Vec<f64> {
    let mut c = vec![0.0; MM * MM];
    // SAFETY: three live `MM`×`MM` matrices; `c` is written only by this call, and `a`
    // and `b` are not written while it runs (the `&mut` borrows are held throughout).
    unsafe { mm_add::<J>(Block(c.as_mut_ptr()), Block(a.as_mut_ptr()), Block(b.as_mut_ptr()), MM) };
    c
}

fn matmul_bench(c: &mut Criterion) {
    let f = filch::Scheduler::builder().workers(WORKERS).build().unwrap();
    let r = rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap();
    let mut a: Vec<f64> = (0..MM * MM).map(|x| ((x * 7 + x / MM * 3) % 10) as f64).collect();
    let mut b: Vec<f64> = (0..MM * MM).map(|x| ((x * 5 + x / MM) % 9) as f64).collect();
    // The sequential product, same summation order per element (k ascending): exact.
    let mut expected = vec![0.0; MM * MM];
    for i in 0..MM {
        for k in 0..MM {
            let aik = a[i * MM + k];
            for j in 0..MM {
                expected[i * MM + j] += aik * b[k * MM + j];
            }
        }
    }
    let mut g = c.benchmark_group("matmul_1024");
    g.sample_size(10);
    g.bench_function("filch", |bch| {
        bch.iter(|| assert!(f.install(|| matmul::<FilchJoin>(&mut a, &mut b)) == expected))
    });
    g.bench_function("rayon", |bch| {
        bch.iter(|| assert!(r.install(|| matmul::<RayonJoin>(&mut a, &mut b)) == expected))
    });
    g.finish();
}

criterion_group!(benches, tree_sum, nqueens, matmul_bench);
criterion_main!(benches);
