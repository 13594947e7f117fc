// The `&Scope` handed to the body cannot leave it (a later spawn would outlive the wait).
fn main() {
    let sched = filch::Scheduler::new();
    let mut leaked = None;
    sched.scope(|s| leaked = Some(s));
    drop(leaked);
}
