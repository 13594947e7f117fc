//! The channel workloads shared by the criterion bench (`benches/chan.rs`) and the
//! head-to-head harness (`examples/compare/`), one function per (system, workload), each
//! returning the value its run computed so that the caller can check it against the
//! `*_expected` function of the workload. The Go side of the same workloads is in
//! `benches/go/main.go`. Dev-only: included by `#[path]` (not part of the library).
//!
//! Each system is used as it is meant to be used: filch and tokio with async tasks (filch
//! also with sync tasks and plain threads for the ping-pong), crossbeam-channel and flume
//! with OS threads, flume also through its async API on filch's tasks. Rendezvous channels
//! where the workload asks for them; tokio's mpsc has no rendezvous form and uses
//! capacity 1 there.
//!
//! - **ping-pong**: `n` round trips between two parties over two rendezvous channels;
//!   the pinger sums what comes back.
//! - **pipeline**: `n` values through source → +1 → +1 → sink, three channels of `cap`.
//! - **fan-in**: `producers` producers send `per` values each into one channel of `cap`;
//!   one consumer sums them.
//! - **select**: two producers send `n/2` values each into their own channel of `cap`; one
//!   consumer selects over both until one is closed, then drains the other.
//! - **skynet** (Go's original shape): a node of `size` leaves makes a rendezvous channel,
//!   spawns its 10 children (each holding a sender), receives their 10 sums and sends its
//!   own to its parent; a leaf sends its number.
//! - **pool**: a job channel, [`POOL_WORKERS`] workers, a result channel (both of `cap`),
//!   each job run under its own time limit ([`job_timeout`]); every 1000th job hangs and
//!   times out, the others suspend once and return their number.
#![allow(dead_code)] // each target uses a subset

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Buffered channels' capacity in the pipeline, fan-in, select and pool workloads.
pub const CAP: usize = 128;
/// Worker tasks (or threads) of the pool workload.
pub const POOL_WORKERS: usize = 16;
/// Every job whose number is `POOL_SLOW_EVERY - 1` modulo this hangs (and times out).
pub const POOL_SLOW_EVERY: u64 = 1000;
/// What a timed-out job contributes to the pool's checked sum.
pub const POOL_TIMED_OUT: u64 = 1 << 40;
/// The time limit of a job that completes: far above any scheduling delay, so it never
/// fires (on Go's side a stall of that length could let the timer win the `select`).
pub const POOL_TIMEOUT: Duration = Duration::from_secs(1);
/// The time limit of a job that hangs.
pub const POOL_SLOW_TIMEOUT: Duration = Duration::from_millis(1);

pub fn pingpong_expected(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

pub fn pipeline_expected(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2 + 2 * n
}

pub fn fanin_expected(producers: u64, per: u64) -> u64 {
    let t = producers * per;
    t * t.saturating_sub(1) / 2
}

/// `n` even: the two producers send `0..n/2` and `n/2..n`.
pub fn select_expected(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

pub fn skynet_expected(leaves: u64) -> u64 {
    leaves * leaves.saturating_sub(1) / 2
}

/// Whether job `i` of the pool hangs until its time limit.
pub fn job_is_slow(i: u64) -> bool {
    i % POOL_SLOW_EVERY == POOL_SLOW_EVERY - 1
}

/// Job `i`'s time limit.
pub fn job_timeout(i: u64) -> Duration {
    if job_is_slow(i) {
        POOL_SLOW_TIMEOUT
    } else {
        POOL_TIMEOUT
    }
}

/// The pool's checked sum: each completed job's number, [`POOL_TIMED_OUT`] per timeout.
pub fn pool_expected(n: u64) -> u64 {
    (0..n).map(|i| if job_is_slow(i) { POOL_TIMED_OUT } else { i }).sum()
}

/// A skynet node's future (boxed: the recursion needs a nameable type; the same on both
/// Rust sides).
pub type NodeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

// ---------------------------------------------------------------------------- filch

pub fn pingpong_filch(s: &filch::Scheduler, n: u64) -> u64 {
    let (ping_tx, ping_rx) = filch::chan::rendezvous::<u64>();
    let (pong_tx, pong_rx) = filch::chan::rendezvous::<u64>();
    let echo = s.spawn_async(async move {
        while let Ok(v) = ping_rx.recv().await {
            pong_tx.send(v).await.unwrap();
        }
    });
    let sum = s
        .spawn_async(async move {
            let mut sum = 0;
            for i in 0..n {
                ping_tx.send(i).await.unwrap();
                sum += pong_rx.recv().await.unwrap();
            }
            sum
        })
        .join()
        .unwrap();
    echo.join().unwrap();
    sum
}

/// Ping-pong between two sync (closure) tasks using the blocking forms: each wait hands
/// the worker's queue to a spare thread and parks the task's thread.
pub fn pingpong_filch_sync(s: &filch::Scheduler, n: u64) -> u64 {
    let (ping_tx, ping_rx) = filch::chan::rendezvous::<u64>();
    let (pong_tx, pong_rx) = filch::chan::rendezvous::<u64>();
    let echo = s.spawn(move || {
        for v in &ping_rx {
            pong_tx.send_blocking(v).unwrap();
        }
    });
    let sum = s
        .spawn(move || {
            let mut sum = 0;
            for i in 0..n {
                ping_tx.send_blocking(i).unwrap();
                sum += pong_rx.recv_blocking().unwrap();
            }
            sum
        })
        .join()
        .unwrap();
    echo.join().unwrap();
    sum
}

/// Ping-pong between two plain threads with filch's blocking forms.
pub fn pingpong_filch_threads(n: u64) -> u64 {
    let (ping_tx, ping_rx) = filch::chan::rendezvous::<u64>();
    let (pong_tx, pong_rx) = filch::chan::rendezvous::<u64>();
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            pong_tx.send_blocking(v).unwrap();
        }
    });
    let mut sum = 0;
    for i in 0..n {
        ping_tx.send_blocking(i).unwrap();
        sum += pong_rx.recv_blocking().unwrap();
    }
    drop(ping_tx);
    echo.join().unwrap();
    sum
}

pub fn pipeline_filch(s: &filch::Scheduler, n: u64, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (a_tx, a_rx) = filch::chan::bounded::<u64>(cap);
        let (b_tx, b_rx) = filch::chan::bounded::<u64>(cap);
        let (c_tx, c_rx) = filch::chan::bounded::<u64>(cap);
        filch::spawn_async_detached(async move {
            for i in 0..n {
                a_tx.send(i).await.unwrap();
            }
        })
        .unwrap();
        filch::spawn_async_detached(async move {
            while let Ok(v) = a_rx.recv().await {
                b_tx.send(v + 1).await.unwrap();
            }
        })
        .unwrap();
        filch::spawn_async_detached(async move {
            while let Ok(v) = b_rx.recv().await {
                c_tx.send(v + 1).await.unwrap();
            }
        })
        .unwrap();
        let mut sum = 0;
        while let Ok(v) = c_rx.recv().await {
            sum += v;
        }
        sum
    })
    .join()
    .unwrap()
}

pub fn fanin_filch(s: &filch::Scheduler, producers: u64, per: u64, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (tx, rx) = filch::chan::bounded::<u64>(cap);
        for p in 0..producers {
            let tx = tx.clone();
            filch::spawn_async_detached(async move {
                for i in 0..per {
                    tx.send(p * per + i).await.unwrap();
                }
            })
            .unwrap();
        }
        drop(tx);
        let mut sum = 0;
        while let Ok(v) = rx.recv().await {
            sum += v;
        }
        sum
    })
    .join()
    .unwrap()
}

/// What one `select` of the select workload produced.
enum Got {
    Value(u64),
    Closed(usize),
}

pub fn select_filch(s: &filch::Scheduler, n: u64, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (a_tx, a_rx) = filch::chan::bounded::<u64>(cap);
        let (b_tx, b_rx) = filch::chan::bounded::<u64>(cap);
        let half = n / 2;
        filch::spawn_async_detached(async move {
            for i in 0..half {
                a_tx.send(i).await.unwrap();
            }
        })
        .unwrap();
        filch::spawn_async_detached(async move {
            for i in half..n {
                b_tx.send(i).await.unwrap();
            }
        })
        .unwrap();
        let mut sum = 0;
        let closed = loop {
            let got = filch::chan::select()
                .recv(&a_rx, |r| r.map_or(Got::Closed(0), Got::Value))
                .recv(&b_rx, |r| r.map_or(Got::Closed(1), Got::Value))
                .await;
            match got {
                Got::Value(v) => sum += v,
                Got::Closed(i) => break i,
            }
        };
        // One channel is closed and drained: receive the rest of the other (as Go sets a
        // closed channel's variable to nil).
        let rest = if closed == 0 { b_rx } else { a_rx };
        while let Ok(v) = rest.recv().await {
            sum += v;
        }
        sum
    })
    .join()
    .unwrap()
}

fn skynet_node_filch(parent: filch::chan::Sender<u64>, num: u64, size: u64) -> NodeFuture {
    Box::pin(async move {
        if size == 1 {
            parent.send(num).await.unwrap();
            return;
        }
        let (tx, rx) = filch::chan::rendezvous::<u64>();
        let sub = size / 10;
        for i in 0..10 {
            filch::spawn_async_detached(skynet_node_filch(tx.clone(), num + i * sub, sub)).unwrap();
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.unwrap();
        }
        parent.send(sum).await.unwrap();
    })
}

pub fn skynet_filch(s: &filch::Scheduler, leaves: u64) -> u64 {
    s.spawn_async(async move {
        let (tx, rx) = filch::chan::rendezvous::<u64>();
        filch::spawn_async_detached(skynet_node_filch(tx, 0, leaves)).unwrap();
        rx.recv().await.unwrap()
    })
    .join()
    .unwrap()
}

/// A pool job on filch: a slow one never completes (its time limit ends it); the others
/// suspend once, as a job waiting on anything would, and return their number.
async fn job_filch(i: u64) -> u64 {
    if job_is_slow(i) {
        std::future::pending::<()>().await;
    }
    filch::future::yield_now().await;
    i
}

pub fn pool_filch(s: &filch::Scheduler, n: u64, workers: usize, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (jobs_tx, jobs_rx) = filch::chan::bounded::<u64>(cap);
        let (res_tx, res_rx) = filch::chan::bounded::<u64>(cap);
        for _ in 0..workers {
            let (jobs_rx, res_tx) = (jobs_rx.clone(), res_tx.clone());
            filch::spawn_async_detached(async move {
                while let Ok(i) = jobs_rx.recv().await {
                    let r =
                        filch::time::timeout(job_timeout(i), job_filch(i)).await.unwrap_or(POOL_TIMED_OUT);
                    res_tx.send(r).await.unwrap();
                }
            })
            .unwrap();
        }
        drop((jobs_rx, res_tx));
        filch::spawn_async_detached(async move {
            for i in 0..n {
                jobs_tx.send(i).await.unwrap();
            }
        })
        .unwrap();
        let mut sum = 0;
        while let Ok(r) = res_rx.recv().await {
            sum += r;
        }
        sum
    })
    .join()
    .unwrap()
}

// ---------------------------------------------------------------------------- tokio

/// Runs `fut` as a task of `rt` and waits for it: the workload's main task runs on a
/// worker, as filch's and Go's do, not on the calling thread.
fn tokio_main<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).unwrap()
}

/// tokio's mpsc has no rendezvous form: capacity 1.
pub fn pingpong_tokio(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    tokio_main(rt, async move {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let echo = tokio::spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).await.unwrap();
            }
        });
        let mut sum = 0;
        for i in 0..n {
            ping_tx.send(i).await.unwrap();
            sum += pong_rx.recv().await.unwrap();
        }
        drop(ping_tx);
        echo.await.unwrap();
        sum
    })
}

pub fn pipeline_tokio(rt: &tokio::runtime::Runtime, n: u64, cap: usize) -> u64 {
    tokio_main(rt, async move {
        let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let (c_tx, mut c_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        tokio::spawn(async move {
            for i in 0..n {
                a_tx.send(i).await.unwrap();
            }
        });
        tokio::spawn(async move {
            while let Some(v) = a_rx.recv().await {
                b_tx.send(v + 1).await.unwrap();
            }
        });
        tokio::spawn(async move {
            while let Some(v) = b_rx.recv().await {
                c_tx.send(v + 1).await.unwrap();
            }
        });
        let mut sum = 0;
        while let Some(v) = c_rx.recv().await {
            sum += v;
        }
        sum
    })
}

pub fn fanin_tokio(rt: &tokio::runtime::Runtime, producers: u64, per: u64, cap: usize) -> u64 {
    tokio_main(rt, async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(cap);
        for p in 0..producers {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    tx.send(p * per + i).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut sum = 0;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    })
}

pub fn select_tokio(rt: &tokio::runtime::Runtime, n: u64, cap: usize) -> u64 {
    tokio_main(rt, async move {
        let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let half = n / 2;
        tokio::spawn(async move {
            for i in 0..half {
                a_tx.send(i).await.unwrap();
            }
        });
        tokio::spawn(async move {
            for i in half..n {
                b_tx.send(i).await.unwrap();
            }
        });
        let (mut sum, mut a_open, mut b_open) = (0, true, true);
        while a_open || b_open {
            tokio::select! {
                r = a_rx.recv(), if a_open => match r { Some(v) => sum += v, None => a_open = false },
                r = b_rx.recv(), if b_open => match r { Some(v) => sum += v, None => b_open = false },
            }
        }
        sum
    })
}

/// tokio's mpsc has no rendezvous form: a channel of capacity 1 per node.
fn skynet_node_tokio(parent: tokio::sync::mpsc::Sender<u64>, num: u64, size: u64) -> NodeFuture {
    Box::pin(async move {
        if size == 1 {
            parent.send(num).await.unwrap();
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
        let sub = size / 10;
        for i in 0..10 {
            tokio::spawn(skynet_node_tokio(tx.clone(), num + i * sub, sub));
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.unwrap();
        }
        parent.send(sum).await.unwrap();
    })
}

pub fn skynet_tokio(rt: &tokio::runtime::Runtime, leaves: u64) -> u64 {
    tokio_main(rt, async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1);
        tokio::spawn(skynet_node_tokio(tx, 0, leaves));
        rx.recv().await.unwrap()
    })
}

/// [`job_filch`] on tokio.
async fn job_tokio(i: u64) -> u64 {
    if job_is_slow(i) {
        std::future::pending::<()>().await;
    }
    tokio::task::yield_now().await;
    i
}

/// Needs a runtime with its timer driver on. tokio's mpsc has one receiver: the workers
/// share it behind a `tokio::sync::Mutex`, the idiom of tokio's docs for a job queue (each
/// worker holds the lock only while it waits for its next job).
pub fn pool_tokio(rt: &tokio::runtime::Runtime, n: u64, workers: usize, cap: usize) -> u64 {
    tokio_main(rt, async move {
        let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        let jobs_rx = std::sync::Arc::new(tokio::sync::Mutex::new(jobs_rx));
        let (res_tx, mut res_rx) = tokio::sync::mpsc::channel::<u64>(cap);
        for _ in 0..workers {
            let (jobs_rx, res_tx) = (jobs_rx.clone(), res_tx.clone());
            tokio::spawn(async move {
                loop {
                    let Some(i) = jobs_rx.lock().await.recv().await else { break };
                    let r =
                        tokio::time::timeout(job_timeout(i), job_tokio(i)).await.unwrap_or(POOL_TIMED_OUT);
                    res_tx.send(r).await.unwrap();
                }
            });
        }
        drop((jobs_rx, res_tx));
        tokio::spawn(async move {
            for i in 0..n {
                jobs_tx.send(i).await.unwrap();
            }
        });
        let mut sum = 0;
        while let Some(r) = res_rx.recv().await {
            sum += r;
        }
        sum
    })
}

// ------------------------------------------------------- crossbeam-channel, OS threads

pub fn pingpong_crossbeam(n: u64) -> u64 {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(0);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(0);
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            pong_tx.send(v).unwrap();
        }
    });
    let mut sum = 0;
    for i in 0..n {
        ping_tx.send(i).unwrap();
        sum += pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    echo.join().unwrap();
    sum
}

pub fn pipeline_crossbeam(n: u64, cap: usize) -> u64 {
    let (a_tx, a_rx) = crossbeam_channel::bounded::<u64>(cap);
    let (b_tx, b_rx) = crossbeam_channel::bounded::<u64>(cap);
    let (c_tx, c_rx) = crossbeam_channel::bounded::<u64>(cap);
    let hs = [
        std::thread::spawn(move || (0..n).for_each(|i| a_tx.send(i).unwrap())),
        std::thread::spawn(move || a_rx.iter().for_each(|v| b_tx.send(v + 1).unwrap())),
        std::thread::spawn(move || b_rx.iter().for_each(|v| c_tx.send(v + 1).unwrap())),
    ];
    let sum = c_rx.iter().sum();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

pub fn fanin_crossbeam(producers: u64, per: u64, cap: usize) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(cap);
    let hs: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || (0..per).for_each(|i| tx.send(p * per + i).unwrap()))
        })
        .collect();
    drop(tx);
    let sum = rx.iter().sum();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

pub fn select_crossbeam(n: u64, cap: usize) -> u64 {
    let (a_tx, a_rx) = crossbeam_channel::bounded::<u64>(cap);
    let (b_tx, b_rx) = crossbeam_channel::bounded::<u64>(cap);
    let half = n / 2;
    let hs = [
        std::thread::spawn(move || (0..half).for_each(|i| a_tx.send(i).unwrap())),
        std::thread::spawn(move || (half..n).for_each(|i| b_tx.send(i).unwrap())),
    ];
    let mut sum = 0;
    let closed = loop {
        crossbeam_channel::select! {
            recv(a_rx) -> r => match r { Ok(v) => sum += v, Err(_) => break 0 },
            recv(b_rx) -> r => match r { Ok(v) => sum += v, Err(_) => break 1 },
        }
    };
    let rest = if closed == 0 { b_rx } else { a_rx };
    sum += rest.iter().sum::<u64>();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

/// Stack size of a skynet node's thread (the default 2 MiB is far more than a node needs).
pub const NODE_STACK: usize = 64 * 1024;

fn skynet_node_crossbeam(parent: crossbeam_channel::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        parent.send(num).unwrap();
        return;
    }
    let (tx, rx) = crossbeam_channel::bounded::<u64>(0);
    let sub = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| {
            let tx = tx.clone();
            std::thread::Builder::new()
                .stack_size(NODE_STACK)
                .spawn(move || skynet_node_crossbeam(tx, num + i * sub, sub))
                .unwrap()
        })
        .collect();
    let sum = (0..10).map(|_| rx.recv().unwrap()).sum();
    children.into_iter().for_each(|h| h.join().unwrap());
    parent.send(sum).unwrap();
}

/// A thread per node: 1.11 threads per leaf.
pub fn skynet_crossbeam(leaves: u64) -> u64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(0);
    let root = std::thread::Builder::new()
        .stack_size(NODE_STACK)
        .spawn(move || skynet_node_crossbeam(tx, 0, leaves))
        .unwrap();
    let sum = rx.recv().unwrap();
    root.join().unwrap();
    sum
}

/// A thread pool's form of a per-job time limit: the job answers on its own channel, the
/// worker waits for the answer with `recv_timeout`. A slow job never answers.
pub fn pool_crossbeam(n: u64, workers: usize, cap: usize) -> u64 {
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<u64>(cap);
    let (res_tx, res_rx) = crossbeam_channel::bounded::<u64>(cap);
    let hs: Vec<_> = (0..workers)
        .map(|_| {
            let (jobs_rx, res_tx) = (jobs_rx.clone(), res_tx.clone());
            std::thread::spawn(move || {
                for i in jobs_rx {
                    let (done_tx, done_rx) = crossbeam_channel::bounded::<u64>(1);
                    if !job_is_slow(i) {
                        done_tx.send(i).unwrap();
                    }
                    let r = done_rx.recv_timeout(job_timeout(i)).unwrap_or(POOL_TIMED_OUT);
                    res_tx.send(r).unwrap();
                }
            })
        })
        .collect();
    drop((jobs_rx, res_tx));
    let feeder = std::thread::spawn(move || (0..n).for_each(|i| jobs_tx.send(i).unwrap()));
    let sum = res_rx.iter().sum();
    feeder.join().unwrap();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

// ------------------------------------------------------------------- flume, OS threads

pub fn pingpong_flume(n: u64) -> u64 {
    let (ping_tx, ping_rx) = flume::bounded::<u64>(0);
    let (pong_tx, pong_rx) = flume::bounded::<u64>(0);
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            pong_tx.send(v).unwrap();
        }
    });
    let mut sum = 0;
    for i in 0..n {
        ping_tx.send(i).unwrap();
        sum += pong_rx.recv().unwrap();
    }
    drop(ping_tx);
    echo.join().unwrap();
    sum
}

pub fn pipeline_flume(n: u64, cap: usize) -> u64 {
    let (a_tx, a_rx) = flume::bounded::<u64>(cap);
    let (b_tx, b_rx) = flume::bounded::<u64>(cap);
    let (c_tx, c_rx) = flume::bounded::<u64>(cap);
    let hs = [
        std::thread::spawn(move || (0..n).for_each(|i| a_tx.send(i).unwrap())),
        std::thread::spawn(move || a_rx.iter().for_each(|v| b_tx.send(v + 1).unwrap())),
        std::thread::spawn(move || b_rx.iter().for_each(|v| c_tx.send(v + 1).unwrap())),
    ];
    let sum = c_rx.iter().sum();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

pub fn fanin_flume(producers: u64, per: u64, cap: usize) -> u64 {
    let (tx, rx) = flume::bounded::<u64>(cap);
    let hs: Vec<_> = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || (0..per).for_each(|i| tx.send(p * per + i).unwrap()))
        })
        .collect();
    drop(tx);
    let sum = rx.iter().sum();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

pub fn select_flume(n: u64, cap: usize) -> u64 {
    let (a_tx, a_rx) = flume::bounded::<u64>(cap);
    let (b_tx, b_rx) = flume::bounded::<u64>(cap);
    let half = n / 2;
    let hs = [
        std::thread::spawn(move || (0..half).for_each(|i| a_tx.send(i).unwrap())),
        std::thread::spawn(move || (half..n).for_each(|i| b_tx.send(i).unwrap())),
    ];
    let mut sum = 0;
    let closed = loop {
        let got = flume::Selector::new()
            .recv(&a_rx, |r| r.map_or(Got::Closed(0), Got::Value))
            .recv(&b_rx, |r| r.map_or(Got::Closed(1), Got::Value))
            .wait();
        match got {
            Got::Value(v) => sum += v,
            Got::Closed(i) => break i,
        }
    };
    let rest = if closed == 0 { b_rx } else { a_rx };
    sum += rest.iter().sum::<u64>();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

fn skynet_node_flume(parent: flume::Sender<u64>, num: u64, size: u64) {
    if size == 1 {
        parent.send(num).unwrap();
        return;
    }
    let (tx, rx) = flume::bounded::<u64>(0);
    let sub = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| {
            let tx = tx.clone();
            std::thread::Builder::new()
                .stack_size(NODE_STACK)
                .spawn(move || skynet_node_flume(tx, num + i * sub, sub))
                .unwrap()
        })
        .collect();
    let sum = (0..10).map(|_| rx.recv().unwrap()).sum();
    children.into_iter().for_each(|h| h.join().unwrap());
    parent.send(sum).unwrap();
}

pub fn skynet_flume(leaves: u64) -> u64 {
    let (tx, rx) = flume::bounded::<u64>(0);
    let root = std::thread::Builder::new()
        .stack_size(NODE_STACK)
        .spawn(move || skynet_node_flume(tx, 0, leaves))
        .unwrap();
    let sum = rx.recv().unwrap();
    root.join().unwrap();
    sum
}

/// [`pool_crossbeam`] with flume.
pub fn pool_flume(n: u64, workers: usize, cap: usize) -> u64 {
    let (jobs_tx, jobs_rx) = flume::bounded::<u64>(cap);
    let (res_tx, res_rx) = flume::bounded::<u64>(cap);
    let hs: Vec<_> = (0..workers)
        .map(|_| {
            let (jobs_rx, res_tx) = (jobs_rx.clone(), res_tx.clone());
            std::thread::spawn(move || {
                for i in jobs_rx {
                    let (done_tx, done_rx) = flume::bounded::<u64>(1);
                    if !job_is_slow(i) {
                        done_tx.send(i).unwrap();
                    }
                    let r = done_rx.recv_timeout(job_timeout(i)).unwrap_or(POOL_TIMED_OUT);
                    res_tx.send(r).unwrap();
                }
            })
        })
        .collect();
    drop((jobs_rx, res_tx));
    let feeder = std::thread::spawn(move || (0..n).for_each(|i| jobs_tx.send(i).unwrap()));
    let sum = res_rx.iter().sum();
    feeder.join().unwrap();
    hs.into_iter().for_each(|h| h.join().unwrap());
    sum
}

// ------------------------------------------------- flume's async API on filch's tasks
// The same tasks as the filch rows, with flume's channels in place of filch's: the
// scheduler is the same, only the channel differs. (flume has no async `select`.)

pub fn pingpong_flume_async(s: &filch::Scheduler, n: u64) -> u64 {
    let (ping_tx, ping_rx) = flume::bounded::<u64>(0);
    let (pong_tx, pong_rx) = flume::bounded::<u64>(0);
    let echo = s.spawn_async(async move {
        while let Ok(v) = ping_rx.recv_async().await {
            pong_tx.send_async(v).await.unwrap();
        }
    });
    let sum = s
        .spawn_async(async move {
            let mut sum = 0;
            for i in 0..n {
                ping_tx.send_async(i).await.unwrap();
                sum += pong_rx.recv_async().await.unwrap();
            }
            sum
        })
        .join()
        .unwrap();
    echo.join().unwrap();
    sum
}

pub fn pipeline_flume_async(s: &filch::Scheduler, n: u64, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (a_tx, a_rx) = flume::bounded::<u64>(cap);
        let (b_tx, b_rx) = flume::bounded::<u64>(cap);
        let (c_tx, c_rx) = flume::bounded::<u64>(cap);
        filch::spawn_async_detached(async move {
            for i in 0..n {
                a_tx.send_async(i).await.unwrap();
            }
        })
        .unwrap();
        filch::spawn_async_detached(async move {
            while let Ok(v) = a_rx.recv_async().await {
                b_tx.send_async(v + 1).await.unwrap();
            }
        })
        .unwrap();
        filch::spawn_async_detached(async move {
            while let Ok(v) = b_rx.recv_async().await {
                c_tx.send_async(v + 1).await.unwrap();
            }
        })
        .unwrap();
        let mut sum = 0;
        while let Ok(v) = c_rx.recv_async().await {
            sum += v;
        }
        sum
    })
    .join()
    .unwrap()
}

pub fn fanin_flume_async(s: &filch::Scheduler, producers: u64, per: u64, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (tx, rx) = flume::bounded::<u64>(cap);
        for p in 0..producers {
            let tx = tx.clone();
            filch::spawn_async_detached(async move {
                for i in 0..per {
                    tx.send_async(p * per + i).await.unwrap();
                }
            })
            .unwrap();
        }
        drop(tx);
        let mut sum = 0;
        while let Ok(v) = rx.recv_async().await {
            sum += v;
        }
        sum
    })
    .join()
    .unwrap()
}

fn skynet_node_flume_async(parent: flume::Sender<u64>, num: u64, size: u64) -> NodeFuture {
    Box::pin(async move {
        if size == 1 {
            parent.send_async(num).await.unwrap();
            return;
        }
        let (tx, rx) = flume::bounded::<u64>(0);
        let sub = size / 10;
        for i in 0..10 {
            filch::spawn_async_detached(skynet_node_flume_async(tx.clone(), num + i * sub, sub)).unwrap();
        }
        drop(tx);
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv_async().await.unwrap();
        }
        parent.send_async(sum).await.unwrap();
    })
}

pub fn skynet_flume_async(s: &filch::Scheduler, leaves: u64) -> u64 {
    s.spawn_async(async move {
        let (tx, rx) = flume::bounded::<u64>(0);
        filch::spawn_async_detached(skynet_node_flume_async(tx, 0, leaves)).unwrap();
        rx.recv_async().await.unwrap()
    })
    .join()
    .unwrap()
}

pub fn pool_flume_async(s: &filch::Scheduler, n: u64, workers: usize, cap: usize) -> u64 {
    s.spawn_async(async move {
        let (jobs_tx, jobs_rx) = flume::bounded::<u64>(cap);
        let (res_tx, res_rx) = flume::bounded::<u64>(cap);
        for _ in 0..workers {
            let (jobs_rx, res_tx) = (jobs_rx.clone(), res_tx.clone());
            filch::spawn_async_detached(async move {
                while let Ok(i) = jobs_rx.recv_async().await {
                    let r =
                        filch::time::timeout(job_timeout(i), job_filch(i)).await.unwrap_or(POOL_TIMED_OUT);
                    res_tx.send_async(r).await.unwrap();
                }
            })
            .unwrap();
        }
        drop((jobs_rx, res_tx));
        filch::spawn_async_detached(async move {
            for i in 0..n {
                jobs_tx.send_async(i).await.unwrap();
            }
        })
        .unwrap();
        let mut sum = 0;
        while let Ok(r) = res_rx.recv_async().await {
            sum += r;
        }
        sum
    })
    .join()
    .unwrap()
}
