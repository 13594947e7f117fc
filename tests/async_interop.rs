#![cfg(not(loom))]
//! Futures written for no particular runtime work on filch: the `futures` combinators and
//! channels, `async-channel`, and `async-io` sockets run inside filch async tasks, and
//! filch's `JoinHandle` and timers work under another executor (`futures::executor`).
//! Each test checks exact results: every value sent is received exactly once, every count
//! is exact, and a lost wake shows up as a hang.

use std::collections::HashSet;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use async_io::Async;
use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::stream::FuturesUnordered;
use futures::{pin_mut, select, FutureExt, SinkExt, StreamExt};

use filch::future::yield_now;
use filch::time::{sleep, sleep_until, timeout};
use filch::{Scheduler, TaskError};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).pin(false).build().unwrap()
}

/// Marks `v` as seen in `seen`; panics if it was seen before.
fn mark_once(seen: &mut [bool], v: usize) {
    assert!(!seen[v], "value {v} received twice");
    seen[v] = true;
}

#[test]
fn join_macro_awaits_both_branches_inside_a_task() {
    let s = sched(2);
    let h = s.spawn_async(async {
        let task = filch::spawn_async(async {
            yield_now().await;
            20u64
        });
        let local = async {
            for _ in 0..10 {
                yield_now().await;
            }
            22u64
        };
        let closure = filch::spawn(|| 100u64);
        let (a, b, c) = futures::join!(task, local, closure);
        a.unwrap() + b + c.unwrap()
    });
    assert_eq!(h.join().unwrap(), 142);
}

#[test]
fn select_macro_picks_the_ready_branch_and_drains_both() {
    let s = sched(2);
    let h = s.spawn_async(async {
        // A finished task against a sleep far in the future and a oneshot nobody sends on:
        // only the task can win. Dropping the losing sleep takes its timer off the wheel.
        let (_keep_open, never) = oneshot::channel::<u64>();
        let done = filch::spawn_async(async { 7u64 }).fuse();
        let never = never.fuse();
        let far = sleep(Duration::from_secs(3600)).fuse();
        pin_mut!(done, never, far);
        let first = select! {
            v = done => v.unwrap(),
            _ = never => unreachable!("the sender is alive and never sends"),
            () = far => unreachable!("an hour has not passed"),
        };

        // A select loop over two tasks: each result is taken exactly once, in whichever
        // order they finish, then `complete` ends the loop.
        let a = filch::spawn_async(async {
            yield_now().await;
            1u64
        })
        .fuse();
        let b = filch::spawn_async(async { 10u64 }).fuse();
        pin_mut!(a, b);
        let (mut sum, mut taken) = (0, 0);
        loop {
            select! {
                v = a => { sum += v.unwrap(); taken += 1; }
                v = b => { sum += v.unwrap(); taken += 1; }
                complete => break,
            }
        }
        (first, sum, taken)
    });
    assert_eq!(h.join().unwrap(), (7, 11, 2));
}

#[test]
fn oneshot_between_two_tasks() {
    let s = sched(2);
    let h = s.spawn_async(async {
        let mut total = 0u64;
        for i in 0..1000u64 {
            let (tx, rx) = oneshot::channel();
            let sender = filch::spawn_async(async move {
                yield_now().await;
                tx.send(i).unwrap();
            });
            total += rx.await.unwrap();
            sender.await.unwrap();
        }
        total
    });
    assert_eq!(h.join().unwrap(), 999 * 1000 / 2);
}

#[test]
fn oneshot_from_a_plain_thread_into_tasks() {
    const N: usize = 1000;
    let s = sched(2);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..N).map(|_| oneshot::channel::<usize>()).unzip();
    let handles: Vec<_> = receivers.into_iter().map(|rx| s.spawn_async(rx)).collect();
    // Sent in reverse order from a thread filch does not know: each wake crosses threads.
    let feeder = std::thread::spawn(move || {
        for (i, tx) in senders.into_iter().enumerate().rev() {
            tx.send(i).unwrap();
        }
    });
    let mut seen = vec![false; N];
    for (i, h) in handles.into_iter().enumerate() {
        let v = h.join().unwrap().unwrap();
        assert_eq!(v, i);
        mark_once(&mut seen, v);
    }
    feeder.join().unwrap();

    // A sender dropped on a plain thread wakes the task with `Canceled`.
    let (tx, rx) = oneshot::channel::<u8>();
    let h = s.spawn_async(rx);
    std::thread::spawn(move || drop(tx)).join().unwrap();
    assert_eq!(h.join().unwrap(), Err(oneshot::Canceled));
}

#[test]
fn mpsc_many_producer_tasks_one_consumer_task() {
    const PRODUCERS: usize = 8;
    const PER: usize = 2000;
    let s = sched(2);
    // A small buffer, so producers wait for room and the consumer wakes them.
    let (tx, mut rx) = mpsc::channel::<usize>(4);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut tx = tx.clone();
            s.spawn_async(async move {
                for i in 0..PER {
                    tx.send(p * PER + i).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = s.spawn_async(async move {
        let mut seen = vec![false; PRODUCERS * PER];
        let mut next = [0usize; PRODUCERS]; // each sender's messages arrive in order
        let (mut count, mut sum) = (0usize, 0usize);
        while let Some(v) = rx.next().await {
            mark_once(&mut seen, v);
            let (p, i) = (v / PER, v % PER);
            assert_eq!(i, next[p], "producer {p} out of order");
            next[p] += 1;
            count += 1;
            sum += v;
        }
        (count, sum)
    });
    for p in producers {
        p.join().unwrap();
    }
    let n = PRODUCERS * PER;
    assert_eq!(consumer.join().unwrap(), (n, n * (n - 1) / 2));
}

#[test]
fn futures_unordered_of_join_handles() {
    const N: usize = 1000;
    let s = sched(2);
    let h = s.spawn_async(async {
        let mut set: FuturesUnordered<_> = (0..N)
            .map(|i| {
                filch::spawn_async(async move {
                    for _ in 0..i % 4 {
                        yield_now().await;
                    }
                    i
                })
            })
            .collect();
        let mut seen = vec![false; N];
        let mut count = 0;
        while let Some(r) = set.next().await {
            mark_once(&mut seen, r.unwrap());
            count += 1;
        }
        count
    });
    assert_eq!(h.join().unwrap(), N);
}

#[test]
fn futures_unordered_of_async_blocks() {
    const N: usize = 1000;
    let s = sched(2);
    let h = s.spawn_async(async {
        // Each block waits on a oneshot fed by another task in reverse order, and yields a
        // few times: wakes come through FuturesUnordered's own per-future wakers.
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..N).map(|_| oneshot::channel::<usize>()).unzip();
        let mut set: FuturesUnordered<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(i, rx)| async move {
                for _ in 0..i % 3 {
                    yield_now().await;
                }
                let v = rx.await.unwrap();
                assert_eq!(v, i);
                v
            })
            .collect();
        let feeder = filch::spawn_async(async move {
            for (i, tx) in senders.into_iter().enumerate().rev() {
                tx.send(i).unwrap();
                if i % 64 == 0 {
                    yield_now().await;
                }
            }
        });
        let mut seen = vec![false; N];
        let (mut count, mut sum) = (0, 0);
        while let Some(v) = set.next().await {
            mark_once(&mut seen, v);
            count += 1;
            sum += v;
        }
        feeder.await.unwrap();
        (count, sum)
    });
    assert_eq!(h.join().unwrap(), (N, N * (N - 1) / 2));
}

#[test]
fn join_handle_awaited_by_a_foreign_executor() {
    let s = sched(2);
    let one = s.spawn_async(async {
        for _ in 0..100 {
            yield_now().await;
        }
        40u64
    });
    let (tx, rx) = oneshot::channel::<u64>();
    // This task waits for the foreign thread, which waits for it: wakes go both ways.
    let two = s.spawn_async(async move { rx.await.unwrap() + 1 });
    let many: Vec<_> = (0..100u64).map(|i| s.spawn_async(async move { i })).collect();
    let closure = s.spawn(|| 5u64);
    let foreign = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let a = one.await.unwrap();
            tx.send(a).unwrap();
            let b = two.await.unwrap();
            let set: FuturesUnordered<_> = many.into_iter().collect();
            let sum: u64 = set.map(Result::unwrap).collect::<Vec<_>>().await.into_iter().sum();
            (a, b, sum, closure.await.unwrap())
        })
    });
    assert_eq!(foreign.join().unwrap(), (40, 41, 4950, 5));
}

#[test]
fn timers_under_a_foreign_executor() {
    // Polled off the workers, a timer uses the global default scheduler's wheels, and its
    // firing wakes the foreign executor's thread.
    let deadline = Instant::now() + Duration::from_millis(5);
    futures::executor::block_on(sleep_until(deadline));
    assert!(Instant::now() >= deadline, "a timer fired early");

    let s = sched(2);
    let h = s.spawn_async(async {
        sleep(Duration::from_millis(2)).await;
        9u8
    });
    let (won, lost) = futures::executor::block_on(async {
        let won = timeout(Duration::from_secs(3600), h).await;
        let lost = timeout(Duration::from_millis(2), std::future::pending::<()>()).await;
        (won, lost)
    });
    assert_eq!(won.unwrap().unwrap(), 9);
    assert!(lost.is_err());
}

#[test]
fn async_channel_ping_pong() {
    const ROUNDS: u64 = 10_000;
    let s = sched(2);
    let (ping_tx, ping_rx) = async_channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = async_channel::bounded::<u64>(1);
    let ponger = s.spawn_async(async move {
        let mut served = 0u64;
        while let Ok(v) = ping_rx.recv().await {
            pong_tx.send(v + 1).await.unwrap();
            served += 1;
        }
        served
    });
    let pinger = s.spawn_async(async move {
        let mut v = 0u64;
        for _ in 0..ROUNDS {
            ping_tx.send(v).await.unwrap();
            let r = pong_rx.recv().await.unwrap();
            assert_eq!(r, v + 1);
            v = r;
        }
        v // the ponger ends when `ping_tx` drops here
    });
    assert_eq!(pinger.join().unwrap(), ROUNDS);
    assert_eq!(ponger.join().unwrap(), ROUNDS);
}

#[test]
fn async_channel_many_producers_many_consumers() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const TOTAL: usize = 40_000;
    const PER: usize = TOTAL / PRODUCERS;
    let s = sched(2);
    let (tx, rx) = async_channel::bounded::<usize>(16);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            s.spawn_async(async move {
                for i in 0..PER {
                    tx.send(p * PER + i).await.unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            s.spawn_async(async move {
                let mut got = Vec::new();
                while let Ok(v) = rx.recv().await {
                    got.push(v);
                }
                got
            })
        })
        .collect();
    drop((tx, rx)); // the channel closes when the last producer finishes
    for p in producers {
        p.join().unwrap();
    }
    let mut seen = vec![false; TOTAL];
    let mut count = 0;
    for c in consumers {
        for v in c.join().unwrap() {
            mark_once(&mut seen, v);
            count += 1;
        }
    }
    assert_eq!(count, TOTAL);
}

/// Echoes everything read from `stream` until the peer shuts its side down; returns the
/// number of bytes echoed.
async fn echo(stream: Async<TcpStream>) -> std::io::Result<usize> {
    let mut buf = [0u8; 1024];
    let mut echoed = 0;
    loop {
        let n = (&stream).read(&mut buf).await?;
        if n == 0 {
            return Ok(echoed);
        }
        (&stream).write_all(&buf[..n]).await?;
        echoed += n;
    }
}

/// Client `id`'s payload: a few KB, different for every client.
fn payload(id: usize) -> Vec<u8> {
    (0..3000 + 37 * id).map(|j| (j * 31 + id * 7) as u8).collect()
}

#[test]
fn async_io_tcp_echo() {
    const CLIENTS: usize = 100;
    const CHUNK: usize = 512;
    let s = sched(2);
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.get_ref().local_addr().unwrap();

    // Accepts exactly CLIENTS connections, one echo task each, and reports what they did.
    let server = s.spawn_async(async move {
        let mut conns = Vec::with_capacity(CLIENTS);
        let mut peers = HashSet::new();
        for _ in 0..CLIENTS {
            let (stream, peer) = listener.accept().await.unwrap();
            assert!(peers.insert(peer), "peer {peer} accepted twice");
            conns.push(filch::spawn_async(echo(stream)));
        }
        let mut bytes = 0;
        for c in conns {
            bytes += c.await.unwrap().unwrap();
        }
        (peers.len(), bytes)
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            s.spawn_async(async move {
                let stream = Async::<TcpStream>::connect(addr).await.unwrap();
                let data = payload(id);
                // Write and read at once, so neither side's socket buffer has to hold it all.
                let write = async {
                    for chunk in data.chunks(CHUNK) {
                        (&stream).write_all(chunk).await.unwrap();
                    }
                    stream.get_ref().shutdown(Shutdown::Write).unwrap();
                };
                let read = async {
                    let mut back = Vec::new();
                    (&stream).read_to_end(&mut back).await.unwrap();
                    back
                };
                let ((), back) = futures::join!(write, read);
                assert!(back == data, "client {id}: got {} bytes back, sent {}", back.len(), data.len());
                back.len()
            })
        })
        .collect();

    let mut client_bytes = 0;
    for c in clients {
        client_bytes += c.join().unwrap();
    }
    let expected: usize = (0..CLIENTS).map(|id| payload(id).len()).sum();
    assert_eq!(client_bytes, expected);
    assert_eq!(server.join().unwrap(), (CLIENTS, expected));
}

#[test]
fn aborted_task_drops_its_foreign_futures() {
    // An abort drops the future where it waits on another runtime's primitives: the
    // channel sees its receiver go, and the handle reports the cancel.
    let s = sched(2);
    let (tx, rx) = async_channel::bounded::<u8>(1);
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let h = s.spawn_async(async move {
        started_tx.send(()).unwrap();
        rx.recv().await
    });
    futures::executor::block_on(started_rx).unwrap();
    assert!(h.abort());
    assert!(matches!(h.join(), Err(TaskError::Cancelled)));
    assert!(tx.is_closed());
}
