//! The Go goroutine toolkit on filch: fire-and-forget tasks counted by a wait group,
//! spawn-many, async/await and await-all, sleep, a timeout that fires and one that does
//! not, `select` with `time.After`, and two named pools with their own statistics.
//!
//! ```text
//! cargo run --release --example goroutines [N]     (default 1000)
//! ```
//!
//! What each Go form becomes:
//!
//! | Go | here |
//! |---|---|
//! | two pools of workers, `"io"` and `"cpu"` | two `Scheduler`s with their own threads and counters |
//! | `wg.Add(1); go func() { defer wg.Done(); … }()` | `wg.add(1)`; `io.spawn_async_detached(async move { …; wg.done() })` |
//! | `for i := 0; i < n; i++ { go f(i) }`, results in order | `cpu.spawn_many(n, f).join_all()` |
//! | a goroutine with a result channel, then `<-ch` | `let h = io.spawn_async(fut)`; `h.await` (or `h.join()`) |
//! | waiting for all of them | awaiting every handle in turn |
//! | `time.Sleep(d)` | `time::sleep(d).await` |
//! | `ctx, _ := context.WithTimeout(ctx, d)`; `f(ctx)` | `time::timeout(d, f).await`: `Err(Elapsed)` when the deadline passes first |
//! | `select { case v := <-ch: … case <-time.After(d): … }` | `chan::select().recv(&rx, …).timeout(d, …).wait()` |
//! | `wg.Wait()` | `wg.wait()` (on a worker it runs other tasks meanwhile) |
//! | closing a pool | `shutdown_timeout(d)`: runs what is queued, then joins the threads |
//!
//! Checked: every fire-and-forget task ran once; every result, in order and summed; a
//! sleep never ends early; a future that waits for what never comes gets `Elapsed` and one
//! that finishes in time does not; `select` takes the value that is there and times out on
//! a channel nobody sends on; each pool's statistics count exactly its own tasks.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use filch::time::{sleep, timeout, Elapsed};
use filch::{chan, Scheduler, WaitGroup};

fn pool(name: &str) -> Scheduler {
    Scheduler::builder().workers(2).thread_name(name).build().expect("valid settings")
}

/// A pretend request: waits a little, as I/O would, then answers.
async fn fetch(i: u64) -> u64 {
    sleep(Duration::from_micros(100)).await;
    i + 1
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&n| n >= 10).unwrap_or(1000);
    let io = pool("io");
    let cpu = pool("cpu");

    // `go f()` n times on the io pool, each waiting 1 ms as if on I/O, counted by a wait
    // group. An async task that waits holds no thread: two threads carry all n at once.
    let wg = WaitGroup::new();
    let hits = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    for _ in 0..n {
        wg.add(1);
        let (wg, hits) = (wg.clone(), hits.clone());
        io.spawn_async_detached(async move {
            sleep(Duration::from_millis(1)).await;
            hits.fetch_add(1, Relaxed);
            wg.done();
        })
        .unwrap_or_else(|_| unreachable!("the pool is running"));
    }
    wg.wait();
    assert_eq!(hits.load(Relaxed), n, "every goroutine ran once");
    let slept = started.elapsed();

    // Many goroutines at once, results collected in index order.
    let squares = cpu.spawn_many(n as usize, |i| (i as u64) * (i as u64)).join_all();
    let sum: u64 = squares.into_iter().map(|r| r.expect("no task panics")).sum();
    assert_eq!(sum, (n - 1) * n * (2 * n - 1) / 6);

    // Async/await: handles on both pools, awaited together from one future (await-all).
    let handles: Vec<_> = (0..n)
        .map(|i| if i % 2 == 0 { io.spawn_async(fetch(i)) } else { cpu.spawn_async(fetch(i)) })
        .collect();
    let total = io.block_on(async {
        let mut total = 0;
        for h in handles {
            total += h.await.expect("no task panics");
        }
        total
    });
    assert_eq!(total, n * (n + 1) / 2);

    // Sleep, and timeouts that fire or not. None of this depends on the machine's speed:
    // a timer never fires early, the stuck future waits for a message nobody sends, and a
    // finished future wins over a deadline that passed at the same moment.
    io.block_on(async {
        let t = Instant::now();
        sleep(Duration::from_millis(2)).await;
        assert!(t.elapsed() >= Duration::from_millis(2), "a sleep never ends early");

        let (_tx, rx) = chan::rendezvous::<u64>(); // nobody will ever send
        assert_eq!(timeout(Duration::from_millis(5), rx.recv()).await, Err(Elapsed::new()));

        let quick = filch::spawn_async(fetch(41)); // on `io`, the pool this block_on entered
        let answer = timeout(Duration::from_secs(60), quick).await.expect("in time");
        assert_eq!(answer.expect("no task panics"), 42);
    });

    // `select` with `time.After`, from plain (blocking) code.
    let (tx, rx) = chan::bounded::<&str>(1);
    tx.try_send("ready").unwrap();
    let got = chan::select().recv(&rx, |r| r.ok()).timeout(Duration::from_secs(60), || None).wait();
    assert_eq!(got, Some("ready"), "a value that is there is taken at once");
    let got = chan::select().recv(&rx, |r| r.ok()).timeout(Duration::from_millis(5), || None).wait();
    assert_eq!(got, None, "nobody sends: the timer case runs");

    // A wait group waited on *inside* a task: the worker runs the group's tasks meanwhile.
    let nested = io.spawn(move || {
        let wg = WaitGroup::new();
        let sum = Arc::new(AtomicU64::new(0));
        for i in 0..100 {
            wg.add(1);
            let (wg, sum) = (wg.clone(), sum.clone());
            drop(filch::spawn(move || {
                sum.fetch_add(i, Relaxed);
                wg.done();
            }));
        }
        wg.wait();
        sum.load(Relaxed)
    });
    assert_eq!(nested.join().unwrap(), 4950);

    // Each pool counted exactly its own tasks. A fire-and-forget task is counted just
    // after its body (its `wg.done()`) returns, so close the pools first: a graceful
    // shutdown runs what is left and joins the threads, and then the counts are final.
    let (io_handle, cpu_handle) = (io.handle(), cpu.handle());
    io.shutdown_timeout(Duration::from_secs(60)).expect("nothing is left running on io");
    cpu.shutdown_timeout(Duration::from_secs(60)).expect("nothing is left running on cpu");
    let (io_stats, cpu_stats) = (io_handle.stats(), cpu_handle.stats());
    println!("pool \"io\":\n{io_stats}\npool \"cpu\":\n{cpu_stats}");
    // io: n fire-and-forget, the even half of the fetches, the quick fetch, the nested
    // task and its 100.
    assert_eq!(io_stats.total.spawned, n + n.div_ceil(2) + 1 + 1 + 100);
    // cpu: n from spawn_many, the odd half of the fetches.
    assert_eq!(cpu_stats.total.spawned, n + n / 2);
    assert_eq!(io_stats.total.completed, io_stats.total.spawned);
    assert_eq!(cpu_stats.total.completed, cpu_stats.total.spawned);
    println!(
        "goroutines: {n} sleeping goroutines on 2 threads in {slept:?}, {n} spawned at once, {n} awaited \
         across two pools; sleep, timeouts, select and wait groups checked"
    );
}
