// `spawn` outlives the caller's frame (the handle may be dropped): no borrowed captures.
fn main() {
    let sched = filch::Scheduler::new();
    let local = vec![1, 2, 3];
    let h = sched.spawn(|| local.len());
    h.join().unwrap();
}
