// The body of `parallel_for` is shared by every worker: it must be `Sync` (a `&Cell` is not).
use std::cell::Cell;

fn main() {
    let sched = filch::Scheduler::new();
    let count = Cell::new(0);
    sched.parallel_for(0..100, |_| count.set(count.get() + 1));
}
