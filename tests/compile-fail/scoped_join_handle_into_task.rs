// Nor can a `ScopedJoinHandle` move into another scope task, which may outlive the body
// or task that holds the `&Scope` it borrows.
fn main() {
    let sched = filch::Scheduler::new();
    sched.scope(|s| {
        let h = s.spawn_with_handle(|_| 1);
        s.spawn(move |_| drop(h.join()));
    });
}
