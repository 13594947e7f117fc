// A scope task may borrow only what outlives the `scope` call: not a local of the body.
fn main() {
    let sched = filch::Scheduler::new();
    sched.scope(|s| {
        let local = vec![1, 2, 3];
        s.spawn(|_| println!("{:?}", local));
    });
}
