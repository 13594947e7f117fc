use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let s = filch::Scheduler::builder().workers(2).build().unwrap();
    let mut out = vec![];
    for _ in 0..4 {
        let st: &'static (filch::WaitGroup, AtomicU64) = Box::leak(Box::new((filch::WaitGroup::new(), AtomicU64::new(0))));
        st.0.add(n as u64);
        let h0 = s.stats().total.heap_fallbacks;
        let t = std::time::Instant::now();
        for _ in 0..n {
            s.spawn_detached(move || { st.1.fetch_add(1, Relaxed); st.0.done(); }).unwrap();
        }
        let t1 = t.elapsed();
        st.0.wait();
        let x = s.stats();
        out.push(format!("{:.0}/{:.0}ms h{}k", t1.as_secs_f64()*1e3, t.elapsed().as_secs_f64()*1e3, (x.total.heap_fallbacks - h0)/1000));
    }
    println!("{}", out.join("  "));
}
