//! `filch::chan` beside crossbeam-channel, flume and tokio's mpsc, same run, 2 workers.
//!
//! - `pingpong`: N round trips between two parties over two rendezvous channels (tokio:
//!   capacity 1, it has no rendezvous form). filch as async tasks and as plain threads
//!   (blocking forms); crossbeam and flume as threads; tokio as tasks.
//! - `pipeline`: N values through a 3-stage pipeline (source → +1 → +1 → sink) over
//!   channels of capacity 128.
//! - `fanin`: 1000 producers send 100 values each into one channel (capacity 128) that one
//!   consumer drains. filch and tokio: 1000 tasks; crossbeam and flume: 1000 threads.
//! - `select2`: two producers send N/2 values each into their own channel (capacity 128);
//!   one consumer selects over both until both are closed.
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const WORKERS: usize = 2;

fn filch_sched() -> filch::Scheduler {
    filch::Scheduler::builder().workers(WORKERS).build().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).build().unwrap()
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    g
}

fn pingpong(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt();
    let n = 10_000u64;
    let mut g = group(c, "pingpong");
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("filch_tasks", n), |b| {
        b.iter(|| {
            let (ping_tx, ping_rx) = filch::chan::rendezvous::<u64>();
            let (pong_tx, pong_rx) = filch::chan::rendezvous::<u64>();
            let echo = f.spawn_async(async move {
                while let Ok(v) = ping_rx.recv().await {
                    pong_tx.send(v).await.unwrap();
                }
            });
            let h = f.spawn_async(async move {
                for i in 0..n {
                    ping_tx.send(i).await.unwrap();
                    pong_rx.recv().await.unwrap();
                }
            });
            h.join().unwrap();
            echo.join().unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("filch_threads", n), |b| {
        b.iter(|| {
            let (ping_tx, ping_rx) = filch::chan::rendezvous::<u64>();
            let (pong_tx, pong_rx) = filch::chan::rendezvous::<u64>();
            let echo = std::thread::spawn(move || {
                for v in ping_rx {
                    pong_tx.send_blocking(v).unwrap();
                }
            });
            for i in 0..n {
                ping_tx.send_blocking(i).unwrap();
                pong_rx.recv_blocking().unwrap();
            }
            drop(ping_tx);
            echo.join().unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("crossbeam_threads", n), |b| {
        b.iter(|| {
            let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(0);
            let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(0);
            let echo = std::thread::spawn(move || {
                for v in ping_rx {
                    pong_tx.send(v).unwrap();
                }
            });
            for i in 0..n {
                ping_tx.send(i).unwrap();
                pong_rx.recv().unwrap();
            }
            drop(ping_tx);
            echo.join().unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("flume_threads", n), |b| {
        b.iter(|| {
            let (ping_tx, ping_rx) = flume::bounded::<u64>(0);
            let (pong_tx, pong_rx) = flume::bounded::<u64>(0);
            let echo = std::thread::spawn(move || {
                for v in ping_rx {
                    pong_tx.send(v).unwrap();
                }
            });
            for i in 0..n {
                ping_tx.send(i).unwrap();
                pong_rx.recv().unwrap();
            }
            drop(ping_tx);
            echo.join().unwrap();
        })
    });
    g.bench_function(BenchmarkId::new("tokio_tasks", n), |b| {
        b.iter(|| {
            t.block_on(async {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(v) = ping_rx.recv().await {
                        pong_tx.send(v).await.unwrap();
                    }
                });
                let h = tokio::spawn(async move {
                    for i in 0..n {
                        ping_tx.send(i).await.unwrap();
                        pong_rx.recv().await.unwrap();
                    }
                });
                h.await.unwrap();
                echo.await.unwrap();
            })
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt();
    let n = 100_000u64;
    let cap = 128;
    let expect = n * (n - 1) / 2 + 2 * n;
    let mut g = group(c, "pipeline");
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("filch_tasks", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = filch::chan::bounded::<u64>(cap);
            let (b_tx, b_rx) = filch::chan::bounded::<u64>(cap);
            let (c_tx, c_rx) = filch::chan::bounded::<u64>(cap);
            let src = f.spawn_async(async move {
                for i in 0..n {
                    a_tx.send(i).await.unwrap();
                }
            });
            let s1 = f.spawn_async(async move {
                while let Ok(v) = a_rx.recv().await {
                    b_tx.send(v + 1).await.unwrap();
                }
            });
            let s2 = f.spawn_async(async move {
                while let Ok(v) = b_rx.recv().await {
                    c_tx.send(v + 1).await.unwrap();
                }
            });
            let sink = f.spawn_async(async move {
                let mut sum = 0;
                while let Ok(v) = c_rx.recv().await {
                    sum += v;
                }
                sum
            });
            assert_eq!(sink.join().unwrap(), expect);
            for h in [src, s1, s2] {
                h.join().unwrap();
            }
        })
    });
    g.bench_function(BenchmarkId::new("crossbeam_threads", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = crossbeam_channel::bounded::<u64>(cap);
            let (b_tx, b_rx) = crossbeam_channel::bounded::<u64>(cap);
            let (c_tx, c_rx) = crossbeam_channel::bounded::<u64>(cap);
            let hs = [
                std::thread::spawn(move || (0..n).for_each(|i| a_tx.send(i).unwrap())),
                std::thread::spawn(move || a_rx.iter().for_each(|v| b_tx.send(v + 1).unwrap())),
                std::thread::spawn(move || b_rx.iter().for_each(|v| c_tx.send(v + 1).unwrap())),
            ];
            assert_eq!(c_rx.iter().sum::<u64>(), expect);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("flume_threads", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = flume::bounded::<u64>(cap);
            let (b_tx, b_rx) = flume::bounded::<u64>(cap);
            let (c_tx, c_rx) = flume::bounded::<u64>(cap);
            let hs = [
                std::thread::spawn(move || (0..n).for_each(|i| a_tx.send(i).unwrap())),
                std::thread::spawn(move || a_rx.iter().for_each(|v| b_tx.send(v + 1).unwrap())),
                std::thread::spawn(move || b_rx.iter().for_each(|v| c_tx.send(v + 1).unwrap())),
            ];
            assert_eq!(c_rx.iter().sum::<u64>(), expect);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("tokio_tasks", n), |b| {
        b.iter(|| {
            t.block_on(async {
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
                assert_eq!(sum, expect);
            })
        })
    });
    g.finish();
}

fn fanin(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt();
    let (producers, per, cap) = (1000u64, 100u64, 128);
    let total = producers * per;
    let mut g = group(c, "fanin");
    g.throughput(Throughput::Elements(total));
    g.bench_function(BenchmarkId::new("filch_tasks", producers), |b| {
        b.iter(|| {
            let (tx, rx) = filch::chan::bounded::<u64>(cap);
            for _ in 0..producers {
                let tx = tx.clone();
                f.spawn_async_detached(async move {
                    for i in 0..per {
                        tx.send(i).await.unwrap();
                    }
                })
                .unwrap();
            }
            drop(tx);
            let n = f.block_on(async move {
                let mut n = 0;
                while rx.recv().await.is_ok() {
                    n += 1;
                }
                n
            });
            assert_eq!(n, total);
        })
    });
    g.bench_function(BenchmarkId::new("crossbeam_threads", producers), |b| {
        b.iter(|| {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(cap);
            let hs: Vec<_> = (0..producers)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || (0..per).for_each(|i| tx.send(i).unwrap()))
                })
                .collect();
            drop(tx);
            assert_eq!(rx.iter().count() as u64, total);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("flume_threads", producers), |b| {
        b.iter(|| {
            let (tx, rx) = flume::bounded::<u64>(cap);
            let hs: Vec<_> = (0..producers)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || (0..per).for_each(|i| tx.send(i).unwrap()))
                })
                .collect();
            drop(tx);
            assert_eq!(rx.iter().count() as u64, total);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("tokio_tasks", producers), |b| {
        b.iter(|| {
            t.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(cap);
                for _ in 0..producers {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for i in 0..per {
                            tx.send(i).await.unwrap();
                        }
                    });
                }
                drop(tx);
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                assert_eq!(n, total);
            })
        })
    });
    g.finish();
}

fn select2(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt();
    let (n, cap) = (100_000u64, 128);
    let mut g = group(c, "select2");
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("filch_tasks", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = filch::chan::bounded::<u64>(cap);
            let (b_tx, b_rx) = filch::chan::bounded::<u64>(cap);
            for tx in [a_tx, b_tx] {
                f.spawn_async_detached(async move {
                    for i in 0..n / 2 {
                        tx.send(i).await.unwrap();
                    }
                })
                .unwrap();
            }
            let got = f
                .spawn_async(async move {
                    let (mut got, mut open) = (0u64, 2);
                    while open > 0 {
                        let r =
                            filch::chan::select().recv(&a_rx, |r| r.is_ok()).recv(&b_rx, |r| r.is_ok()).await;
                        if r {
                            got += 1;
                        } else {
                            open =
                                [&a_rx, &b_rx].iter().filter(|rx| !(rx.is_closed() && rx.is_empty())).count();
                        }
                    }
                    got
                })
                .join()
                .unwrap();
            assert_eq!(got, n);
        })
    });
    g.bench_function(BenchmarkId::new("crossbeam_threads", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = crossbeam_channel::bounded::<u64>(cap);
            let (b_tx, b_rx) = crossbeam_channel::bounded::<u64>(cap);
            let hs: Vec<_> = [a_tx, b_tx]
                .into_iter()
                .map(|tx| std::thread::spawn(move || (0..n / 2).for_each(|i| tx.send(i).unwrap())))
                .collect();
            let (mut got, mut a_open, mut b_open) = (0u64, true, true);
            while a_open || b_open {
                crossbeam_channel::select! {
                    recv(a_rx) -> r => match r { Ok(_) => got += 1, Err(_) => a_open = false },
                    recv(b_rx) -> r => match r { Ok(_) => got += 1, Err(_) => b_open = false },
                }
            }
            assert_eq!(got, n);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("flume_threads", n), |b| {
        b.iter(|| {
            let (a_tx, a_rx) = flume::bounded::<u64>(cap);
            let (b_tx, b_rx) = flume::bounded::<u64>(cap);
            let hs: Vec<_> = [a_tx, b_tx]
                .into_iter()
                .map(|tx| std::thread::spawn(move || (0..n / 2).for_each(|i| tx.send(i).unwrap())))
                .collect();
            let (mut got, mut a_open, mut b_open) = (0u64, true, true);
            while a_open || b_open {
                let r = flume::Selector::new()
                    .recv(&a_rx, |r| (0, r.is_ok()))
                    .recv(&b_rx, |r| (1, r.is_ok()))
                    .wait();
                match r {
                    (_, true) => got += 1,
                    (0, false) => a_open = false,
                    _ => b_open = false,
                }
            }
            assert_eq!(got, n);
            hs.into_iter().for_each(|h| h.join().unwrap());
        })
    });
    g.bench_function(BenchmarkId::new("tokio_tasks", n), |b| {
        b.iter(|| {
            t.block_on(async {
                let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<u64>(cap);
                let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<u64>(cap);
                for tx in [a_tx, b_tx] {
                    tokio::spawn(async move {
                        for i in 0..n / 2 {
                            tx.send(i).await.unwrap();
                        }
                    });
                }
                let (mut got, mut a_open, mut b_open) = (0u64, true, true);
                while a_open || b_open {
                    tokio::select! {
                        r = a_rx.recv(), if a_open => match r { Some(_) => got += 1, None => a_open = false },
                        r = b_rx.recv(), if b_open => match r { Some(_) => got += 1, None => b_open = false },
                    }
                }
                assert_eq!(got, n);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, pingpong, pipeline, fanin, select2);
criterion_main!(benches);
