// `for_each_chunk_mut` hands chunks to other threads: the elements must be `Send`.
use std::rc::Rc;

fn main() {
    let sched = filch::Scheduler::new();
    let mut data = vec![Rc::new(1), Rc::new(2)];
    sched.for_each_chunk_mut(&mut data, 1, |_, c| drop(c.len()));
}
