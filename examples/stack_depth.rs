//! Measures the stack used per nested `join` level on a worker (bytes per level).
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static TOP: AtomicUsize = AtomicUsize::new(0);
static DEEPEST: AtomicUsize = AtomicUsize::new(usize::MAX);

fn deep(n: u32) -> u32 {
    let marker = 0u8;
    let here = &marker as *const u8 as usize;
    DEEPEST.fetch_min(here, Relaxed);
    if n == 0 {
        return 0;
    }
    let (a, b) = filch::join(|| deep(n - 1), || 1u32);
    a + b
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let workers: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut b = filch::Scheduler::builder().workers(workers);
    if std::env::args().nth(3).is_none() {
        b = b.stack_size(64 << 20);
    }
    let s = b.build().unwrap();
    let r = s.install(|| {
        let marker = 0u8;
        TOP.store(&marker as *const u8 as usize, Relaxed);
        deep(n)
    });
    let used = TOP.load(Relaxed) - DEEPEST.load(Relaxed);
    println!("depth {n}: result {r}, {} bytes total, {} bytes per level", used, used / n as usize);
}
