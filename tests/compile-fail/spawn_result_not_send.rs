// A task's result crosses from the worker to the joiner: it must be `Send` (an `Rc` is not).
use std::rc::Rc;

fn main() {
    let sched = filch::Scheduler::new();
    let h = sched.spawn(|| Rc::new(5));
    drop(h.join());
}
