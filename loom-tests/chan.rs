//! Loom models of `filch::chan` (docs/DESIGN.md, "Channels": S, R, Q1–Q6, X1–X4) on plain
//! loom threads: blocking sends and receives park on the thread's parker (the loom
//! parker), async futures are polled by hand. Every model asserts exactly-once: each value
//! sent is received once or returned to its sender, never both, never neither. Values
//! carry a loom cell written by the sender and read by the receiver, so a hand-over that
//! is not ordered by happens-before is a causality violation.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use filch::chan::{self, RecvError, TryRecvError};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::task::{model_capped, mutant_test};

/// A value whose payload is a loom cell: written by its maker, read by whoever receives it.
struct Msg {
    id: usize,
    cell: Arc<UnsafeCell<usize>>,
}

// SAFETY: test code; loom checks every access to the cell for ordering.
unsafe impl Send for Msg {}

impl Msg {
    fn new(id: usize) -> Msg {
        let cell = Arc::new(UnsafeCell::new(0));
        // SAFETY: the only access before the message is sent.
        cell.with_mut(|p| unsafe { *p = id });
        Msg { id, cell }
    }

    /// The receiver's read: ordered after the maker's write, or loom reports it.
    fn open(self) -> usize {
        // SAFETY: the maker's write happened before the send; loom checks the order.
        let v = self.cell.with(|p| unsafe { *p });
        assert_eq!(v, self.id);
        self.id
    }
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// S/R/Q6: a sender sends two values into a one-slot channel while another thread closes
/// it and this one receives until it is closed. Each value is received or comes back to
/// the sender (exactly one of the two); a receiver waiting when the close comes is woken.
fn send_recv_close() {
    model_capped(2, 3, || {
        let (tx, rx) = chan::bounded::<Msg>(1);
        let closer = {
            let tx = tx.clone();
            thread::spawn(move || {
                tx.close();
            })
        };
        let sender = thread::spawn(move || {
            let mut returned = Vec::new();
            for id in 1..=2 {
                if let Err(e) = tx.send_blocking(Msg::new(id)) {
                    returned.push(e.into_inner().id);
                }
            }
            returned
        });
        let mut received = Vec::new();
        while let Ok(m) = rx.recv_blocking() {
            received.push(m.open());
        }
        let mut all = sender.join().unwrap();
        closer.join().unwrap();
        all.extend(received);
        all.sort();
        assert_eq!(all, [1, 2], "each value received or returned, exactly once");
    });
}

/// The rendezvous hand-over (S2 / R2 with Q2, Q3): a send returns only once the value is
/// taken, and the receiver sees everything the sender wrote before sending. The receiver
/// is an async receive polled by hand (yielding between polls), so nothing but the token
/// orders the hand-over: a blocked thread would also be ordered by its parker (U1 → P1),
/// which hides a missing Release or Acquire on the token.
fn rendezvous_handoff() {
    model_capped(2, 3, || {
        let (tx, rx) = chan::rendezvous::<Msg>();
        let rx2 = rx.clone();
        let sender = thread::spawn(move || {
            tx.send_blocking(Msg::new(1)).map_err(|_| ()).unwrap();
            // Taken already: nothing is left for another receiver.
            assert!(matches!(rx2.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)));
        });
        let mut recv = pin!(rx.recv());
        let got = loop {
            match poll_once(recv.as_mut()) {
                Poll::Ready(r) => break r,
                Poll::Pending => thread::yield_now(),
            }
        };
        assert_eq!(got.map(Msg::open), Ok(1));
        sender.join().unwrap();
    });
}

/// X1–X3: a select receives from one of two rendezvous channels whose senders race to
/// fill it; exactly one case takes effect (the other sender is served by a plain receive
/// afterwards), and no value is lost or received twice.
fn select_claims_one() {
    model_capped(2, 3, || {
        let (a_tx, a_rx) = chan::rendezvous::<Msg>();
        let (b_tx, b_rx) = chan::rendezvous::<Msg>();
        let ta = thread::spawn(move || a_tx.send_blocking(Msg::new(1)).is_ok());
        let tb = thread::spawn(move || b_tx.send_blocking(Msg::new(2)).is_ok());
        let first = chan::select()
            .recv(&a_rx, |r| (0, r.map(Msg::open)))
            .recv(&b_rx, |r| (1, r.map(Msg::open)))
            .wait();
        // The other sender still waits (a mutant that fired both cases has lost its value
        // and this receive finds the channel closed).
        let second = match first.0 {
            0 => b_rx.recv_blocking().map(Msg::open),
            _ => a_rx.recv_blocking().map(Msg::open),
        };
        assert!(ta.join().unwrap() && tb.join().unwrap(), "both sends completed");
        let mut got = [first.1.ok(), second.ok()];
        got.sort();
        assert_eq!(got, [Some(1), Some(2)], "each value received exactly once");
    });
}

/// Q4/Q5: a pending async receive is dropped while a sender hands it a value; the value
/// is not lost: the next receive gets it.
fn cancel_recv_gives_back() {
    model_capped(2, 3, || {
        let (tx, rx) = chan::bounded::<Msg>(1);
        let sender = thread::spawn(move || {
            tx.send_blocking(Msg::new(1)).map_err(|_| ()).unwrap();
        });
        let mut got = None;
        {
            let mut recv = pin!(rx.recv());
            if let Poll::Ready(r) = poll_once(recv.as_mut()) {
                got = Some(r.map(Msg::open));
            }
            // Dropped here, possibly after the sender handed it the value.
        }
        sender.join().unwrap();
        let got = got.unwrap_or_else(|| rx.recv_blocking().map(Msg::open));
        assert_eq!(got, Ok(1), "the value was lost");
        assert_eq!(rx.recv_blocking().map(Msg::open), Err(RecvError));
    });
}

/// Q5's hand-on: two receivers wait (a dropped async one and a blocked thread); the value
/// handed to the dropped one must reach the other, or it sleeps beside it.
fn cancel_recv_passes_on() {
    model_capped(2, 3, || {
        let (tx, rx) = chan::bounded::<Msg>(0);
        let rx2 = rx.clone();
        let other = thread::spawn(move || rx2.recv_blocking().map(Msg::open));
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || {
                tx.send_blocking(Msg::new(1)).map_err(|_| ()).unwrap();
            })
        };
        let mut mine = None;
        {
            let mut recv = pin!(rx.recv());
            if let Poll::Ready(r) = poll_once(recv.as_mut()) {
                mine = Some(r.map(Msg::open).unwrap());
            }
            // Wait until the value is out of the sender's hands, then drop the receive.
            sender.join().unwrap();
        }
        if mine.is_some() {
            // The other receiver still waits: serve it too.
            tx.send_blocking(Msg::new(2)).map_err(|_| ()).unwrap();
        }
        let theirs = other.join().unwrap().unwrap();
        let mut got: Vec<usize> = mine.into_iter().chain([theirs]).collect();
        got.sort();
        assert!(got == [1] || got == [1, 2], "each value received exactly once: {got:?}");
    });
}

#[test]
fn send_recv_close_model() {
    send_recv_close();
}

#[test]
fn rendezvous_handoff_model() {
    rendezvous_handoff();
}

#[test]
fn select_claims_one_model() {
    select_claims_one();
}

#[test]
fn cancel_recv_gives_back_model() {
    cancel_recv_gives_back();
}

#[test]
fn cancel_recv_passes_on_model() {
    cancel_recv_passes_on();
}

mutant_test!(
    /// Q6 without firing the waiters: a receiver asleep on an empty channel when it closes
    /// is never woken.
    mutant_chan_close_fires_waiters_caught_by_send_recv_close,
    ChanCloseFiresWaiters,
    send_recv_close,
    "deadlock"
);

mutant_test!(
    /// Q2's CAS without Release: the receiver reads the value handed to its entry without
    /// the sender's write into it ordered before.
    mutant_chan_fire_release_caught_by_rendezvous_handoff,
    ChanFireRelease,
    rendezvous_handoff,
    "Causality violation"
);

mutant_test!(
    /// Q3's load without Acquire: the woken receiver reads its slot unordered with the
    /// sender's write into it.
    mutant_chan_fired_acquire_caught_by_rendezvous_handoff,
    ChanFiredAcquire,
    rendezvous_handoff,
    "Causality violation"
);

mutant_test!(
    /// Q2 claiming without a CAS: both senders fire the select's token, both sends
    /// complete, and one value is lost with the case that was not chosen (the receive that
    /// should get it finds the channel closed).
    mutant_chan_claim_cas_caught_by_select_claims_one,
    ChanClaimCas,
    select_claims_one,
    "each value received exactly once"
);

mutant_test!(
    /// Q5 dropping the handed value instead of giving it back: lost.
    mutant_chan_give_back_keeps_caught_by_cancel_recv_gives_back,
    ChanGiveBackKeeps,
    cancel_recv_gives_back,
    "the value was lost"
);

mutant_test!(
    /// Q5 buffering the handed value while another receiver waits: that receiver sleeps
    /// beside it for ever.
    mutant_chan_give_back_passes_on_caught_by_cancel_recv_passes_on,
    ChanGiveBackPassesOn,
    cancel_recv_passes_on,
    "deadlock"
);
