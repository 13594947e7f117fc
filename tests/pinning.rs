//! Pinning across schedulers: the workers of several schedulers in one process spread over
//! the CPUs of the process's affinity mask instead of all starting at the first one, and a
//! worker's CPU is free again once it exits. Its own test binary, so that no other test's
//! schedulers hold CPUs meanwhile.
#![cfg(all(not(loom), target_os = "linux"))]

use filch::Scheduler;

/// The CPUs the calling thread may run on.
fn my_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit array written by the kernel; size and pointer match.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
        (0..libc::CPU_SETSIZE as usize).filter(|&i| libc::CPU_ISSET(i, &set)).collect()
    }
}

fn worker_cpus(s: &Scheduler) -> Vec<usize> {
    s.spawn(my_cpus).join().unwrap()
}

#[test]
fn schedulers_spread_over_the_allowed_cpus() {
    let allowed = my_cpus();
    let a = Scheduler::builder().workers(1).build().unwrap();
    let b = Scheduler::builder().workers(1).build().unwrap();
    let (ca, cb) = (worker_cpus(&a), worker_cpus(&b));
    assert_eq!(ca.len(), 1, "a pinned worker runs on one CPU: {ca:?}");
    assert!(allowed.contains(&ca[0]) && allowed.contains(&cb[0]), "{ca:?} {cb:?} not in {allowed:?}");
    if allowed.len() >= 2 {
        assert_ne!(ca, cb, "two one-worker schedulers share a CPU while another is free");
    }
    // `b`'s CPU is free again once its worker has exited: a new scheduler takes it.
    drop(b);
    let c = Scheduler::builder().workers(1).build().unwrap();
    assert_eq!(worker_cpus(&c), cb);
    drop((a, c));
    // More workers than allowed CPUs: unpinned, each worker may run anywhere allowed.
    let many = Scheduler::builder().workers(allowed.len() + 1).build().unwrap();
    assert_eq!(worker_cpus(&many), allowed);
}
