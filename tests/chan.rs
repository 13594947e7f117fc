//! `filch::chan`: every form of every operation and its errors, Go's closing rules, the
//! rendezvous, cancel safety of the async forms, `select` (exactly one case, default,
//! timer, fairness), iteration, and a stress test of producers and consumers on async
//! tasks and plain threads with closes and futures dropped mid-wait, where every value is
//! received exactly once or returned to its sender. Nothing here is checked by time.

use std::future::{Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use filch::chan::{
    self, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use filch::Scheduler;

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).build().unwrap()
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// A waker that counts its wakes.
struct CountWaker(AtomicUsize);

impl std::task::Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// The four forms and their errors.

#[test]
fn try_forms_and_errors() {
    let (tx, rx) = chan::bounded::<u32>(2);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!((tx.len(), rx.len(), tx.capacity()), (2, 2, Some(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(4).unwrap();
    drop(tx);
    assert!(rx.is_closed());
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 4]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

    let (tx, rx) = chan::unbounded::<u32>();
    assert_eq!(tx.capacity(), None);
    for i in 0..10_000 {
        tx.try_send(i).unwrap();
    }
    drop(rx);
    assert_eq!(tx.try_send(7), Err(TrySendError::Closed(7)));
    assert_eq!(format!("{:?}", TrySendError::Full(1)), "Full(..)");
    assert_eq!(TrySendError::Closed(3).to_string(), "sending on a closed channel");
}

#[test]
fn blocking_forms_between_threads() {
    for cap in [0, 1, 7] {
        let (tx, rx) = chan::bounded::<usize>(cap);
        let producer = std::thread::spawn(move || {
            for i in 0..2000 {
                tx.send_blocking(i).unwrap();
            }
        });
        let got: Vec<usize> = rx.iter().collect();
        producer.join().unwrap();
        assert_eq!(got, (0..2000).collect::<Vec<_>>(), "capacity {cap}: FIFO, each once");
        assert_eq!(rx.recv_blocking(), Err(RecvError));
    }
}

#[test]
fn timeout_and_deadline_forms() {
    let (tx, rx) = chan::bounded::<u8>(1);
    assert_eq!(rx.recv_timeout(Duration::ZERO), Err(RecvTimeoutError::Timeout));
    assert_eq!(rx.recv_deadline(Instant::now()), Err(RecvTimeoutError::Timeout));
    tx.send_timeout(1, Duration::from_millis(1)).unwrap();
    assert_eq!(tx.send_timeout(2, Duration::from_millis(1)), Err(SendTimeoutError::Timeout(2)));
    assert_eq!(tx.send_deadline(3, Instant::now()), Err(SendTimeoutError::Timeout(3)));
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(1));
    // A timed wait that is served before its deadline.
    let t = {
        let tx = tx.clone();
        std::thread::spawn(move || tx.send_blocking(5).unwrap())
    };
    assert_eq!(rx.recv_timeout(Duration::from_secs(600)), Ok(5));
    t.join().unwrap();
    drop(tx);
    assert_eq!(rx.recv_timeout(Duration::from_secs(600)), Err(RecvTimeoutError::Closed));
    let (tx, rx) = chan::bounded::<u8>(0);
    drop(rx);
    assert_eq!(tx.send_timeout(9, Duration::from_secs(600)), Err(SendTimeoutError::Closed(9)));
}

#[test]
fn async_forms_between_tasks() {
    let s = sched(2);
    for cap in [0, 1, 16] {
        let (tx, rx) = chan::bounded::<u64>(cap);
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let tx = tx.clone();
                s.spawn_async(async move {
                    for i in 0..500 {
                        tx.send(p * 1000 + i).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = s.spawn_async(async move {
            let mut seen = vec![0u8; 4000];
            while let Some(v) = rx.next().await {
                seen[v as usize] += 1;
            }
            seen
        });
        for p in producers {
            p.join().unwrap();
        }
        let seen = consumer.join().unwrap();
        for p in 0..4 {
            assert!(seen[p * 1000..p * 1000 + 500].iter().all(|&n| n == 1), "capacity {cap}");
        }
    }
}

#[test]
fn blocking_from_a_sync_task() {
    // A closure task blocks on a channel that a plain thread feeds (it occupies its
    // worker meanwhile; the other worker stays free).
    let s = sched(2);
    let (tx, rx) = chan::bounded::<u32>(0);
    let h = s.spawn(move || rx.iter().sum::<u32>());
    for i in 0..100 {
        tx.send_blocking(i).unwrap();
    }
    drop(tx);
    assert_eq!(h.join().unwrap(), 4950);
}

// ---------------------------------------------------------------------------------------
// Closing.

#[test]
fn close_drains_then_reports_closed() {
    let (tx, rx) = chan::bounded::<u8>(4);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(tx.close());
    assert!(!rx.close(), "already closed");
    assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    assert_eq!(tx.send_blocking(4), Err(SendError(4)));
    assert_eq!(rx.recv_blocking(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv_blocking(), Err(RecvError));
    assert_eq!(filch::block_on(rx.recv()), Err(RecvError));
    assert_eq!(filch::block_on(tx.send(5)), Err(SendError(5)));
}

#[test]
fn close_wakes_waiting_senders_with_their_values_and_receivers_with_closed() {
    // Waiting senders (a full channel) get their values back on close.
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.try_send(0).unwrap();
    let mut a = pin!(tx.send(1));
    let mut b = pin!(tx.send(2));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    rx.close();
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Err(SendError(1))));
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Err(SendError(2))));
    assert_eq!(rx.try_recv(), Ok(0));
    // Waiting receivers (threads) see "closed" when the last sender goes.
    let (tx, rx) = chan::bounded::<u32>(0);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.recv_blocking())
        })
        .collect();
    let tx2 = tx.clone();
    drop(tx);
    tx2.send_blocking(7).unwrap(); // one of them takes it
    drop(tx2);
    let mut results: Vec<_> = waiters.into_iter().map(|t| t.join().unwrap().ok()).collect();
    results.sort();
    assert_eq!(results, [None, None, Some(7)]);
}

#[test]
fn last_receiver_drops_the_buffer_and_fails_senders() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::bounded::<Counted>(3);
    for _ in 0..3 {
        tx.try_send(Counted(drops.clone())).map_err(|_| ()).unwrap();
    }
    let rx2 = rx.clone();
    drop(rx);
    assert_eq!(drops.load(SeqCst), 0, "a receiver is left");
    // A sender waiting on the full channel gets its value back when the last receiver goes.
    let mut waiting = pin!(tx.send(Counted(drops.clone())));
    assert!(poll_once(waiting.as_mut()).is_pending());
    drop(rx2);
    assert_eq!(drops.load(SeqCst), 3, "the buffered values are dropped");
    match poll_once(waiting.as_mut()) {
        Poll::Ready(Err(SendError(v))) => drop(v),
        _ => panic!("the waiting send must fail with its value"),
    }
    assert_eq!(drops.load(SeqCst), 4);
    assert!(tx.try_send(Counted(drops.clone())).unwrap_err().is_closed());
    assert_eq!(drops.load(SeqCst), 5);
    assert_eq!(tx.counts(), (1, 0));
}

// ---------------------------------------------------------------------------------------
// The rendezvous.

#[test]
fn rendezvous_send_completes_only_when_taken() {
    let (tx, rx) = chan::rendezvous::<u32>();
    assert_eq!(tx.capacity(), Some(0));
    assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)), "no receiver waits");
    {
        let mut send = pin!(tx.send(2));
        for _ in 0..3 {
            assert!(poll_once(send.as_mut()).is_pending(), "nobody has taken it");
            assert_eq!(rx.len(), 0, "nothing is buffered");
        }
        assert_eq!(rx.try_recv(), Ok(2), "a waiting sender's value is there to take");
        assert_eq!(poll_once(send.as_mut()), Poll::Ready(Ok(())));
        // A waiting receiver is handed the value by `try_send`, which then succeeds.
        let mut recv = pin!(rx.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(poll_once(recv.as_mut()), Poll::Ready(Ok(3)));
    }
    // Threads: the sender returns after the receiver took the value.
    let taken = Arc::new(AtomicBool::new(false));
    let t = {
        let taken = taken.clone();
        std::thread::spawn(move || {
            tx.send_blocking(4).unwrap();
            // `taken` is set before the receiver's `try_recv` can return the value, which
            // the send waits for.
            assert!(taken.load(SeqCst), "the send returned before the value was taken");
        })
    };
    loop {
        taken.store(true, SeqCst);
        match rx.try_recv() {
            Ok(v) => {
                assert_eq!(v, 4);
                break;
            }
            Err(TryRecvError::Empty) => {
                taken.store(false, SeqCst);
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
    t.join().unwrap();
}

#[test]
fn rendezvous_ping_pong_between_tasks() {
    let s = sched(2);
    let (ping_tx, ping_rx) = chan::rendezvous::<u32>();
    let (pong_tx, pong_rx) = chan::rendezvous::<u32>();
    let echo = s.spawn_async(async move {
        while let Ok(v) = ping_rx.recv().await {
            pong_tx.send(v + 1).await.unwrap();
        }
    });
    let h = s.spawn_async(async move {
        let mut v = 0;
        for _ in 0..10_000 {
            ping_tx.send(v).await.unwrap();
            v = pong_rx.recv().await.unwrap();
        }
        v
    });
    assert_eq!(h.join().unwrap(), 10_000);
    echo.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Cancel safety.

#[test]
fn dropped_recv_future_gives_a_handed_value_back() {
    for cap in [0, 1, 4] {
        let (tx, rx) = chan::bounded::<u32>(cap);
        let mut recv = Box::pin(rx.recv());
        assert!(poll_once(recv.as_mut()).is_pending());
        tx.try_send(1).unwrap(); // handed straight to the waiting receive
        tx.try_send(2).map_or_else(|e| assert!(cap == 0 && e.is_full()), |()| assert!(cap > 0));
        drop(recv); // never polled again: the value must not be lost
        assert_eq!(rx.try_recv(), Ok(1), "capacity {cap}: the handed value is first again");
        if cap > 0 {
            assert_eq!(rx.try_recv(), Ok(2));
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    }
}

#[test]
fn dropped_recv_future_passes_its_value_to_another_waiting_receiver() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let mut first = Box::pin(rx.recv());
    let mut second = pin!(rx.recv());
    let w = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(w.clone());
    assert!(first.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    assert!(second.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    tx.try_send(5).unwrap(); // to `first`
    assert_eq!(w.0.load(SeqCst), 1);
    drop(first);
    assert_eq!(w.0.load(SeqCst), 2, "the second receiver is woken");
    assert_eq!(poll_once(second.as_mut()), Poll::Ready(Ok(5)));
}

#[test]
fn dropped_send_future_drops_its_value_once_or_leaves_it_sent() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::bounded::<Counted>(0);
    // Never polled: dropped with the future.
    drop(tx.send(Counted(drops.clone())));
    assert_eq!(drops.load(SeqCst), 1);
    // Waiting, then dropped: dropped once, and the channel does not have it.
    let mut send = Box::pin(tx.send(Counted(drops.clone())));
    assert!(poll_once(send.as_mut()).is_pending());
    drop(send);
    assert_eq!(drops.load(SeqCst), 2);
    assert!(rx.try_recv().is_err());
    // Waiting, taken, then dropped: the send happened.
    let mut send = Box::pin(tx.send(Counted(drops.clone())));
    assert!(poll_once(send.as_mut()).is_pending());
    let v = rx.try_recv().map_err(|_| ()).unwrap();
    drop(send);
    assert_eq!(drops.load(SeqCst), 2);
    drop(v);
    assert_eq!(drops.load(SeqCst), 3);
    // `cancel` gives the value back instead.
    let mut send = Box::pin(tx.send(Counted(drops.clone())));
    assert!(poll_once(send.as_mut()).is_pending());
    let back = send.as_mut().cancel().expect("not taken: returned");
    drop(send);
    assert_eq!(drops.load(SeqCst), 3);
    drop(back);
    assert_eq!(drops.load(SeqCst), 4);
}

#[test]
fn async_timeout_composes_and_loses_nothing() {
    let s = sched(2);
    let (tx, rx) = chan::bounded::<u32>(0);
    let r = s.block_on(filch::time::timeout(Duration::from_millis(2), rx.recv()));
    assert!(r.is_err(), "nothing came");
    let r = s.block_on(filch::time::timeout(Duration::from_millis(2), tx.send(1)));
    assert!(r.is_err(), "nobody took it");
    // Receivers that time out over and over while a producer sends: nothing is lost.
    let producer = std::thread::spawn(move || {
        for i in 0..300 {
            tx.send_blocking(i).unwrap();
        }
    });
    let got = s.block_on(async {
        let mut got = Vec::new();
        loop {
            match filch::time::timeout(Duration::from_micros(300), rx.recv()).await {
                Ok(Ok(v)) => got.push(v),
                Ok(Err(RecvError)) => break got,
                Err(_) => {}
            }
        }
    });
    producer.join().unwrap();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
}

#[test]
fn a_future_moved_to_another_task_registers_the_new_waker() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let mut recv = Box::pin(rx.recv());
    assert!(poll_once(recv.as_mut()).is_pending()); // registers a no-op waker
    let w = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(w.clone());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    tx.try_send(1).unwrap();
    assert_eq!(w.0.load(SeqCst), 1, "the new waker is the one woken");
    assert_eq!(poll_once(recv.as_mut()), Poll::Ready(Ok(1)));
}

// ---------------------------------------------------------------------------------------
// Select.

#[test]
fn select_runs_exactly_one_ready_case() {
    let (tx1, rx1) = chan::bounded::<u32>(4);
    let (tx2, rx2) = chan::bounded::<u32>(4);
    for i in 0..4 {
        tx1.try_send(i).unwrap();
        tx2.try_send(10 + i).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..8 {
        let v = chan::select().recv(&rx1, |r| r.unwrap()).recv(&rx2, |r| r.unwrap()).wait();
        got.push(v);
    }
    got.sort();
    assert_eq!(got, [0, 1, 2, 3, 10, 11, 12, 13], "each select took exactly one value");
    // A send case and a receive case: exactly one takes effect.
    let (tx3, rx3) = chan::bounded::<u32>(1);
    tx1.try_send(99).unwrap();
    let which =
        chan::select().send(&tx3, 5, |r| r.map(|()| "sent").unwrap()).recv(&rx1, |_| "received").wait();
    match which {
        "sent" => assert_eq!((rx3.try_recv(), rx1.len()), (Ok(5), 1)),
        _ => assert_eq!((rx3.try_recv(), rx1.len()), (Err(TryRecvError::Empty), 0)),
    }
}

#[test]
fn select_default_and_timer() {
    let (tx, rx) = chan::bounded::<u32>(0);
    assert_eq!(chan::select().recv(&rx, |_| 1).send(&tx, 3, |_| 2).default(|| 0).wait(), 0, "nothing ready");
    let start = Instant::now();
    let r = chan::select().recv(&rx, |_| 1).timeout(Duration::from_millis(3), || 0).wait();
    assert_eq!(r, 0);
    assert!(start.elapsed() >= Duration::from_millis(3), "a timer never fires early");
    // A select with only a timer.
    assert_eq!(chan::select::<u8>().timeout(Duration::from_millis(1), || 9).wait(), 9);
    // Async: the timer uses filch's timers.
    let s = sched(1);
    let r =
        s.block_on(async { chan::select().recv(&rx, |_| 1).timeout(Duration::from_millis(2), || 0).await });
    assert_eq!(r, 0);
    // Closed channels make their cases ready.
    drop(tx);
    assert!(chan::select().recv(&rx, |r| r.is_err()).default(|| false).wait());
}

#[test]
fn select_does_not_meet_itself() {
    // A send and a receive on the same rendezvous channel in one select never pair up.
    let (tx, rx) = chan::rendezvous::<u32>();
    let r = chan::select().send(&tx, 1, |_| "sent").recv(&rx, |_| "received").default(|| "none").wait();
    assert_eq!(r, "none");
    let r = chan::select()
        .send(&tx, 1, |_| "sent")
        .recv(&rx, |_| "received")
        .timeout(Duration::from_millis(2), || "timer")
        .wait();
    assert_eq!(r, "timer");
    // ... but a second select does meet it.
    let t = {
        let rx = rx.clone();
        std::thread::spawn(move || chan::select().recv(&rx, |r| r.unwrap()).wait())
    };
    chan::select().send(&tx, 7, |r| r.unwrap()).timeout(Duration::from_secs(600), || panic!("timer")).wait();
    assert_eq!(t.join().unwrap(), 7);
}

#[test]
fn select_is_fair_among_ready_cases() {
    let (tx1, rx1) = chan::unbounded::<u32>();
    let (tx2, rx2) = chan::unbounded::<u32>();
    let (tx3, rx3) = chan::unbounded::<u32>();
    let mut hits = [0u32; 3];
    for _ in 0..3000 {
        tx1.try_send(0).unwrap();
        tx2.try_send(1).unwrap();
        tx3.try_send(2).unwrap();
        let i = chan::select()
            .recv(&rx1, |r| r.unwrap())
            .recv(&rx2, |r| r.unwrap())
            .recv(&rx3, |r| r.unwrap())
            .wait();
        hits[i as usize] += 1;
        // Empty the others so that every round starts with all three ready.
        let _ = (rx1.try_recv(), rx2.try_recv(), rx3.try_recv());
    }
    assert!(hits.iter().all(|&h| h > 0), "every ready case gets picked: {hits:?}");
}

#[test]
fn selects_against_each_other_across_threads_exactly_once() {
    // Threads each select over sending on two rendezvous channels; receivers select over
    // receiving from both. Every value is received exactly once.
    let (a_tx, a_rx) = chan::rendezvous::<u64>();
    let (b_tx, b_rx) = chan::rendezvous::<u64>();
    const PER: u64 = 2000;
    let senders: Vec<_> = (0..2u64)
        .map(|s| {
            let (a_tx, b_tx) = (a_tx.clone(), b_tx.clone());
            std::thread::spawn(move || {
                for i in 0..PER {
                    let v = s * PER + i;
                    chan::select().send(&a_tx, v, |r| r.unwrap()).send(&b_tx, v, |r| r.unwrap()).wait();
                }
            })
        })
        .collect();
    drop((a_tx, b_tx));
    let seen = Arc::new(Mutex::new(vec![0u8; 2 * PER as usize]));
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let (a_rx, b_rx, seen) = (a_rx.clone(), b_rx.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut closed = [false; 2];
                while !closed.iter().all(|&c| c) {
                    // A closed channel's receive is ready at once (with `Err`).
                    let r = chan::select().recv(&a_rx, |r| r.ok()).recv(&b_rx, |r| r.ok()).wait();
                    match r {
                        Some(v) => seen.lock().unwrap()[v as usize] += 1,
                        None => closed = [a_rx.is_closed(), b_rx.is_closed()],
                    }
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    for t in receivers {
        t.join().unwrap();
    }
    assert!(seen.lock().unwrap().iter().all(|&n| n == 1), "every value received exactly once");
}

#[test]
fn async_select_between_tasks() {
    let s = sched(2);
    let (tx1, rx1) = chan::bounded::<u32>(0);
    let (tx2, rx2) = chan::bounded::<u32>(0);
    let p1 = s.spawn_async(async move {
        for i in 0..1000 {
            tx1.send(i).await.unwrap();
        }
    });
    let p2 = s.spawn_async(async move {
        for i in 0..1000 {
            tx2.send(1000 + i).await.unwrap();
        }
    });
    let c = s.spawn_async(async move {
        let mut seen = vec![0u8; 2000];
        let mut open = 2;
        while open > 0 {
            let r = chan::select().recv(&rx1, |r| r.ok()).recv(&rx2, |r| r.ok()).await;
            match r {
                Some(v) => seen[v as usize] += 1,
                None => open = [rx1.is_closed(), rx2.is_closed()].iter().filter(|&&c| !c).count(),
            }
        }
        seen
    });
    p1.join().unwrap();
    p2.join().unwrap();
    assert!(c.join().unwrap().iter().all(|&n| n == 1));
}

#[test]
fn dropped_select_gives_a_handed_value_back() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let (_tx2, rx2) = chan::bounded::<u32>(0);
    let mut sel = Box::pin(chan::select().recv(&rx, |r| r.unwrap()).recv(&rx2, |r| r.unwrap()).into_future());
    assert!(poll_once(sel.as_mut()).is_pending());
    tx.try_send(3).unwrap(); // handed to the select's entry
    drop(sel);
    assert_eq!(rx.try_recv(), Ok(3), "the value went back to the channel");
}

// ---------------------------------------------------------------------------------------
// Iteration.

#[test]
fn iteration_forms() {
    let (tx, rx) = chan::bounded::<u32>(2);
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            tx.send_blocking(i).unwrap();
        }
    });
    let mut n = 0;
    for (i, v) in (&rx).into_iter().enumerate() {
        assert_eq!(v as usize, i);
        n += 1;
    }
    assert_eq!(n, 100);
    t.join().unwrap();
    let (tx, rx) = chan::unbounded::<u32>();
    tx.try_send(1).unwrap();
    drop(tx);
    assert_eq!(rx.into_iter().collect::<Vec<_>>(), [1]);
}

// ---------------------------------------------------------------------------------------
// Stress.

/// A value of the stress test: its drop is counted per id, so a value dropped twice or
/// never is caught; receivers and senders that get it back count it too.
struct Item {
    id: usize,
    ledger: Arc<Ledger>,
}

struct Ledger {
    dropped: Vec<AtomicUsize>,
    received: Vec<AtomicUsize>,
    returned: Vec<AtomicUsize>,
    /// Given to a `select` send case whose timer won: dropped unsent, as documented.
    abandoned: Vec<AtomicUsize>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.ledger.dropped[self.id].fetch_add(1, Relaxed);
    }
}

impl Ledger {
    fn new(n: usize) -> Arc<Ledger> {
        let v = || (0..n).map(|_| AtomicUsize::new(0)).collect();
        Arc::new(Ledger { dropped: v(), received: v(), returned: v(), abandoned: v() })
    }
    fn received(&self, item: Item) {
        self.received[item.id].fetch_add(1, Relaxed);
    }
    fn returned(&self, item: Item) {
        self.returned[item.id].fetch_add(1, Relaxed);
    }
}

/// A time limit for the stress test's timed operations: zero a third of the time (the
/// operation is dropped or cancelled right after it starts waiting, racing the threads
/// that complete it), else up to `max_us`.
fn limit(r: &mut impl FnMut(u64) -> u64, max_us: u64) -> Duration {
    match r(3) {
        0 => Duration::ZERO,
        _ => Duration::from_micros(r(max_us)),
    }
}

/// xorshift, per producer/consumer.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// One round: `P` producers and `C` consumers — async tasks, sync tasks (whose blocking
/// operations lend their worker) and plain threads — every way of sending and receiving,
/// timeouts that drop pending futures, and a close once a share of the items is sent. Every item ends received exactly once or returned to
/// its sender, and is dropped exactly once.
fn stress_round(cap: Option<usize>, seed: u64) {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const PER: usize = 3000;
    let s = sched(2);
    let (tx, rx) = match cap {
        Some(c) => chan::bounded::<Item>(c),
        None => chan::unbounded::<Item>(),
    };
    let ledger = Ledger::new(PRODUCERS * PER);
    let sent = Arc::new(AtomicUsize::new(0));
    // Close after 1/4, 1/2 or 3/4 of the items.
    let close_at = (seed as usize % 3 + 1) * PRODUCERS * PER / 4;
    // Task handles (async and sync) and thread handles, joined from this thread.
    let (mut tasks, mut threads) = (Vec::new(), Vec::new());
    for p in 0..PRODUCERS {
        let (tx, ledger, sent) = (tx.clone(), ledger.clone(), sent.clone());
        let ids = p * PER..(p + 1) * PER;
        let mut r = rng(seed + p as u64);
        let after_send = move |sent: &AtomicUsize, tx: &chan::Sender<Item>| {
            if sent.fetch_add(1, Relaxed) + 1 == close_at {
                tx.close();
            }
        };
        if p % 2 == 0 {
            tasks.push(s.spawn_async(async move {
                for id in ids {
                    let item = Item { id, ledger: ledger.clone() };
                    match r(3) {
                        0 => match tx.send(item).await {
                            Ok(()) => after_send(&sent, &tx),
                            Err(SendError(v)) => ledger.returned(v),
                        },
                        1 => {
                            // A send that may time out: cancel it and take the value back.
                            let mut send = pin!(tx.send(item));
                            match filch::time::timeout(limit(&mut r, 500), send.as_mut()).await {
                                Ok(Ok(())) => after_send(&sent, &tx),
                                Ok(Err(SendError(v))) => ledger.returned(v),
                                Err(_) => match send.as_mut().cancel() {
                                    Some(v) => ledger.returned(v),
                                    None => after_send(&sent, &tx),
                                },
                            }
                        }
                        _ => match tx.try_send(item) {
                            Ok(()) => after_send(&sent, &tx),
                            Err(TrySendError::Closed(v)) => ledger.returned(v),
                            Err(TrySendError::Full(v)) => {
                                // Wait for room in a select with a timer; if the timer wins,
                                // the unsent value is dropped with the select (documented).
                                let r = chan::select()
                                    .send(&tx, v, |r| r.map_err(SendError::into_inner).map(Some))
                                    .timeout(limit(&mut r, 300), || Ok(None))
                                    .await;
                                match r {
                                    Ok(Some(())) => after_send(&sent, &tx),
                                    Ok(None) => {
                                        ledger.abandoned[id].fetch_add(1, Relaxed);
                                    }
                                    Err(v) => ledger.returned(v),
                                }
                            }
                        },
                    }
                }
            }));
        } else {
            let body = move || {
                for id in ids {
                    let item = Item { id, ledger: ledger.clone() };
                    let r = match r(2) {
                        0 => tx.send_blocking(item).map_err(SendError::into_inner),
                        _ => tx.send_timeout(item, limit(&mut r, 500)).map_err(|e| e.into_inner()),
                    };
                    match r {
                        Ok(()) => after_send(&sent, &tx),
                        Err(v) => ledger.returned(v),
                    }
                }
            };
            // A plain thread, or a sync task whose blocking sends lend its worker.
            if p % 4 == 1 {
                threads.push(std::thread::spawn(body));
            } else {
                tasks.push(s.spawn(body));
            }
        }
    }
    drop(tx);
    for c in 0..CONSUMERS {
        let (rx, ledger) = (rx.clone(), ledger.clone());
        let mut r = rng(seed * 31 + c as u64);
        if c % 2 == 0 {
            tasks.push(s.spawn_async(async move {
                loop {
                    let got = match r(3) {
                        0 => rx.recv().await.map(Some),
                        // A receive that may time out: its future is dropped mid-wait.
                        1 => match filch::time::timeout(limit(&mut r, 500), rx.recv()).await {
                            Ok(v) => v.map(Some),
                            Err(_) => Ok(None),
                        },
                        _ => {
                            chan::select()
                                .recv(&rx, |r| r.map(Some))
                                .timeout(limit(&mut r, 300), || Ok(None))
                                .await
                        }
                    };
                    match got {
                        Ok(Some(v)) => ledger.received(v),
                        Ok(None) => {}
                        Err(RecvError) => break,
                    }
                }
            }));
        } else {
            let body = move || loop {
                let got = match r(3) {
                    0 => rx.recv_blocking().map(Some),
                    1 => match rx.recv_timeout(limit(&mut r, 500)) {
                        Ok(v) => Ok(Some(v)),
                        Err(RecvTimeoutError::Timeout) => Ok(None),
                        Err(RecvTimeoutError::Closed) => Err(RecvError),
                    },
                    _ => match rx.try_recv() {
                        Ok(v) => Ok(Some(v)),
                        Err(TryRecvError::Empty) => {
                            std::thread::yield_now();
                            Ok(None)
                        }
                        Err(TryRecvError::Closed) => Err(RecvError),
                    },
                };
                match got {
                    Ok(Some(v)) => ledger.received(v),
                    Ok(None) => {}
                    Err(RecvError) => break,
                }
            };
            // A plain thread, or a sync task whose blocking receives lend its worker.
            if c % 4 == 1 {
                threads.push(std::thread::spawn(body));
            } else {
                tasks.push(s.spawn(body));
            }
        }
    }
    drop(rx);
    for h in tasks {
        h.join().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    drop(s);
    let mut received = 0;
    for id in 0..PRODUCERS * PER {
        let d = ledger.dropped[id].load(Relaxed);
        let rc = ledger.received[id].load(Relaxed);
        let rt = ledger.returned[id].load(Relaxed);
        let ab = ledger.abandoned[id].load(Relaxed);
        assert_eq!(
            (d, rc + rt + ab),
            (1, 1),
            "item {id}: dropped {d} times, received {rc}, returned {rt}, abandoned {ab}; cap {cap:?}, seed {seed}"
        );
        received += rc;
    }
    assert_eq!(received, sent.load(Relaxed), "every send that succeeded was received");
}

#[test]
fn stress_producers_consumers_tasks_and_threads_with_closes_and_drops() {
    for (i, cap) in [Some(0), Some(1), Some(8), None].into_iter().enumerate() {
        for round in 0..3u64 {
            stress_round(cap, 1 + i as u64 * 10 + round);
        }
    }
}

// ---------------------------------------------------------------------------------------
// A foreign waker whose clone panics.

/// Clones made of [`fragile_waker`]'s wakers so far; every clone after the first panics.
static FRAGILE_CLONES: AtomicUsize = AtomicUsize::new(0);

fn fragile_clone(data: *const ()) -> std::task::RawWaker {
    if FRAGILE_CLONES.fetch_add(1, SeqCst) >= 1 {
        panic!("fragile waker cloned twice");
    }
    std::task::RawWaker::new(data, &FRAGILE)
}

fn fragile_noop(_: *const ()) {}

static FRAGILE: std::task::RawWakerVTable =
    std::task::RawWakerVTable::new(fragile_clone, fragile_noop, fragile_noop, fragile_noop);

/// A waker whose first clone works (the receive that registers it keeps that clone) and
/// whose later clones panic.
fn fragile_waker() -> Waker {
    // SAFETY: the vtable's functions ignore the data pointer and uphold the RawWaker
    // contract (clone returns a waker with the same vtable; the others do nothing).
    unsafe { Waker::from_raw(std::task::RawWaker::new(std::ptr::null(), &FRAGILE)) }
}

// A close fires every waiting receiver; one whose waker's clone panics there must not
// keep the others unfired (the close contains that clone and reports it).
#[test]
fn a_waker_clone_that_panics_in_a_close_leaves_the_other_waiters_woken() {
    let (tx, rx) = chan::bounded::<u8>(1);
    let rx2 = rx.clone();
    let mut fragile = pin!(rx.recv());
    let mut plain = pin!(rx2.recv());
    let fragile_waker = fragile_waker();
    assert!(fragile.as_mut().poll(&mut Context::from_waker(&fragile_waker)).is_pending());
    let count = Arc::new(CountWaker(AtomicUsize::new(0)));
    let plain_waker = Waker::from(count.clone());
    assert!(plain.as_mut().poll(&mut Context::from_waker(&plain_waker)).is_pending());
    // The fragile receive registered first, so the close meets its waker first.
    assert!(tx.close());
    assert_eq!(count.0.load(SeqCst), 1, "the other waiter was woken");
    assert!(matches!(
        plain.as_mut().poll(&mut Context::from_waker(&plain_waker)),
        Poll::Ready(Err(RecvError))
    ));
    // The fragile one was fired too (not woken): polled again, it sees the close.
    assert!(matches!(
        fragile.as_mut().poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Err(RecvError))
    ));
}

// ---------------------------------------------------------------------------------------
// A foreign waker whose clone, wake or drop panics on demand: a completer contains each
// (reported), so no send, receive or close panics because of another task's waker, and
// nothing is lost.

/// What a [`touchy_waker`] does; each flag is read when the call happens. Each test has
/// its own `static` one.
struct Touchy {
    clone_panics: AtomicBool,
    wake_panics: AtomicBool,
    woken: AtomicUsize,
}

impl Touchy {
    const fn new() -> Touchy {
        Touchy {
            clone_panics: AtomicBool::new(false),
            wake_panics: AtomicBool::new(false),
            woken: AtomicUsize::new(0),
        }
    }
}

fn touchy(data: *const ()) -> &'static Touchy {
    // SAFETY: every touchy waker's data points to a `static` `Touchy` (`touchy_waker`).
    unsafe { &*data.cast::<Touchy>() }
}

fn touchy_clone(data: *const ()) -> std::task::RawWaker {
    if touchy(data).clone_panics.load(SeqCst) {
        panic!("touchy clone");
    }
    std::task::RawWaker::new(data, &TOUCHY)
}

fn touchy_wake(data: *const ()) {
    if touchy(data).wake_panics.load(SeqCst) {
        panic!("touchy wake");
    }
    touchy(data).woken.fetch_add(1, SeqCst);
}

fn touchy_drop(_: *const ()) {}

static TOUCHY: std::task::RawWakerVTable =
    std::task::RawWakerVTable::new(touchy_clone, touchy_wake, touchy_wake, touchy_drop);

fn touchy_waker(t: &'static Touchy) -> Waker {
    // SAFETY: the vtable's functions read the `static` `Touchy` the data points to and
    // uphold the RawWaker contract (clone returns a waker with the same data and vtable).
    unsafe { Waker::from_raw(std::task::RawWaker::new((t as *const Touchy).cast(), &TOUCHY)) }
}

#[test]
fn a_receivers_waker_whose_clone_panics_does_not_unwind_into_the_send() {
    let (tx, rx) = chan::bounded::<u8>(1);
    static T: Touchy = Touchy::new();
    let (waker, t) = (touchy_waker(&T), &T);
    let mut recv = pin!(rx.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    t.clone_panics.store(true, SeqCst);
    // The send hands the value over without panicking; the receiver cannot be woken.
    assert_eq!(tx.try_send(5), Ok(()));
    assert_eq!(t.woken.load(SeqCst), 0);
    // Polled again (it was fired all the same), the receive has the value.
    assert!(matches!(poll_once(recv.as_mut()), Poll::Ready(Ok(5))));

    // Dropped instead of polled, it gives the value back: nothing is lost.
    let mut recv = Box::pin(rx.recv());
    t.clone_panics.store(false, SeqCst);
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    t.clone_panics.store(true, SeqCst);
    assert_eq!(tx.try_send(6), Ok(()));
    drop(recv);
    assert_eq!(rx.try_recv(), Ok(6));
}

#[test]
fn a_senders_waker_whose_clone_panics_does_not_unwind_into_the_receive() {
    let (tx, rx) = chan::bounded::<u8>(1);
    tx.try_send(1).unwrap();
    static T: Touchy = Touchy::new();
    let (waker, t) = (touchy_waker(&T), &T);
    let mut send = pin!(tx.send(2));
    assert!(send.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    t.clone_panics.store(true, SeqCst);
    // The receive takes the buffered value and moves the waiting sender's into the buffer.
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(matches!(poll_once(send.as_mut()), Poll::Ready(Ok(()))));
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn a_waker_whose_wake_panics_does_not_unwind_into_the_send_or_the_close() {
    let (tx, rx) = chan::bounded::<u8>(1);
    static T: Touchy = Touchy::new();
    let (waker, t) = (touchy_waker(&T), &T);
    t.wake_panics.store(true, SeqCst);
    let mut recv = pin!(rx.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    assert_eq!(tx.try_send(3), Ok(()));
    assert!(matches!(poll_once(recv.as_mut()), Poll::Ready(Ok(3))));

    let mut recv = pin!(rx.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
    assert!(tx.close(), "the close returns instead of raising the waker's panic");
    assert!(matches!(poll_once(recv.as_mut()), Poll::Ready(Err(RecvError))));
}
