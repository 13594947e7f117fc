// A `ScopedJoinHandle` borrows the `&Scope` it came from: it cannot be returned out of
// the body (its task's panic would have no scope left to go to).
fn main() {
    let sched = filch::Scheduler::new();
    let h = sched.scope(|s| s.spawn_with_handle(|_| 1));
    let _ = h.join();
}
