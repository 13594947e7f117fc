//! `filch::chan` against a `VecDeque` model, one thread: random sequences of `try_send`,
//! `try_recv`, `close`, handle clones and drops, and async receives and sends polled once
//! and then dropped or cancelled, on bounded, rendezvous and unbounded channels. Every
//! result, length and closed flag equals the model's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use filch::chan::{self, TryRecvError, TrySendError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    TrySend(u32),
    TryRecv,
    Close,
    /// Clone a sender (or drop the newest clone).
    CloneSender,
    DropSender,
    /// An async receive polled once (it waits if nothing is there), then `TrySend(v)`
    /// hands it `v` or not, then it is dropped: the value must go back to the front.
    RecvHandedThenDropped(u32),
    /// An async send polled once (it waits if it cannot proceed), then cancelled: the
    /// value comes back unless a receiver took it (nobody does here).
    SendWaitsThenCancelled(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u32>().prop_map(Op::TrySend),
        5 => Just(Op::TryRecv),
        1 => Just(Op::Close),
        1 => Just(Op::CloneSender),
        1 => Just(Op::DropSender),
        2 => any::<u32>().prop_map(Op::RecvHandedThenDropped),
        2 => any::<u32>().prop_map(Op::SendWaitsThenCancelled),
    ]
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_vecdeque_model(
        cap in prop_oneof![Just(None), (0usize..5).prop_map(Some)],
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let (tx, rx) = match cap {
            Some(c) => chan::bounded::<u32>(c),
            None => chan::unbounded::<u32>(),
        };
        let limit = cap.unwrap_or(usize::MAX);
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut closed = false;
        // The first sender is `tx`; `extra` holds clones (dropping them all but `tx` never
        // closes the channel).
        let mut extra: Vec<chan::Sender<u32>> = Vec::new();
        for op in ops {
            match op {
                Op::TrySend(v) => {
                    let expect = if closed {
                        Err(TrySendError::Closed(v))
                    } else if model.len() < limit {
                        model.push_back(v);
                        Ok(())
                    } else {
                        Err(TrySendError::Full(v))
                    };
                    prop_assert_eq!(tx.try_send(v), expect);
                }
                Op::TryRecv => {
                    let expect = match model.pop_front() {
                        Some(v) => Ok(v),
                        None if closed => Err(TryRecvError::Closed),
                        None => Err(TryRecvError::Empty),
                    };
                    prop_assert_eq!(rx.try_recv(), expect);
                }
                Op::Close => {
                    prop_assert_eq!(rx.close(), !closed);
                    closed = true;
                }
                Op::CloneSender => extra.push(tx.clone()),
                Op::DropSender => drop(extra.pop()),
                Op::RecvHandedThenDropped(v) => {
                    let mut recv = pin!(rx.recv());
                    match poll_once(recv.as_mut()) {
                        Poll::Ready(r) => {
                            let expect = model.pop_front().ok_or(chan::RecvError);
                            prop_assert!(expect.is_ok() || closed);
                            prop_assert_eq!(r, expect);
                        }
                        Poll::Pending => {
                            prop_assert!(model.is_empty() && !closed);
                            // A waiting receiver takes any value, even on a rendezvous channel.
                            prop_assert_eq!(tx.try_send(v), Ok(()));
                            model.push_front(v); // given back when the receive is dropped
                        }
                    }
                }
                Op::SendWaitsThenCancelled(v) => {
                    let mut send = pin!(tx.send(v));
                    match poll_once(send.as_mut()) {
                        Poll::Ready(r) => {
                            if closed {
                                prop_assert_eq!(r, Err(chan::SendError(v)));
                            } else {
                                prop_assert!(model.len() < limit);
                                prop_assert_eq!(r, Ok(()));
                                model.push_back(v);
                            }
                        }
                        Poll::Pending => {
                            prop_assert!(!closed && model.len() >= limit);
                            prop_assert_eq!(send.as_mut().cancel(), Some(v));
                        }
                    }
                }
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.is_closed(), closed);
        }
        drop(extra);
        drop(tx);
        // Draining after the last sender: everything left, then closed.
        let rest: Vec<u32> = rx.try_iter().collect();
        prop_assert_eq!(rest, Vec::from(model));
        prop_assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }
}
