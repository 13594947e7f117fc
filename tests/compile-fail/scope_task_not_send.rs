// A scope task runs on another thread: its captures must be `Send` (an `Rc` is not).
use std::rc::Rc;

fn main() {
    let sched = filch::Scheduler::new();
    let shared = Rc::new(5);
    sched.scope(|s| {
        s.spawn(move |_| println!("{}", shared));
    });
}
