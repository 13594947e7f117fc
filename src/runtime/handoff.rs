//! The hand-over steps B1–B5 of worker roles (`roles.rs` has the protocol, the proof
//! sketch and the board they work on).

use std::time::Instant;

use crate::lockfree::park::Parker;
use crate::runtime::roles::{BoardState, Claim, Job, Lent, NONE};
use crate::runtime::shared::Shared;
use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::Arc;
use crate::task::TaskRef;

/// Grants role `r` to the claim `c` (B2/B3, under the lock): sets the wake target and the
/// grant. Returns the claimant's parker, to unpark after unlocking.
///
/// # Safety
/// `c` was just taken off the queue, under the lock; its owner waits for the grant.
unsafe fn grant(shared: &Shared, r: usize, c: *const Claim) -> *const Parker {
    // SAFETY: the claimant waits (parked or about to park) until it sees `granted`, so its
    // `Claim` is alive; after the store below we touch it no more.
    let c = unsafe { &*c };
    let parker = c.parker;
    shared.set_holder(r, parker);
    // B3, Release: publishes our last accesses to the role (and the wake target) to the
    // claimant's Acquire load of `granted`.
    c.granted.store(r, mutation::ord(Site::RoleGrantRelease, Release));
    parker
}

/// Unparks a parker owned by `Shared` (a thread slot's).
fn unpark(p: *const Parker) {
    // SAFETY: every parker a role's holder or a claimant uses is a slot parker of the
    // board, owned by the `Shared`, which outlives its threads.
    unsafe { &*p }.unpark();
}

impl Shared {
    /// Thread slot `s`'s parker (`roles.rs`: worker threads first, then spare slots).
    pub(crate) fn slot_parker(&self, s: usize) -> &Arc<Parker> {
        self.board.parkers[s].get_or_init(|| Arc::new(Parker::new()))
    }

    /// B1: the holder of role `r` is about to block; gives the role to a claimant, an idle
    /// thread, or a new spare thread. `No`: nobody could take it (the caller keeps it).
    pub(crate) fn lend(this: &Arc<Shared>, r: usize) -> Lent {
        this.workers[r].role.touch();
        let mut st = this.board.lock();
        if let Some(c) = st.claims.pop_front() {
            // Relaxed: under the lock (module docs, B3).
            this.board.claimants.fetch_sub(1, Relaxed);
            // SAFETY: just taken off the queue under the lock.
            let p = unsafe { grant(this, r, c) };
            drop(st);
            this.count_lend();
            unpark(p);
            return Lent::Yes;
        }
        if let Some(s) = self_pop_idle(this, &mut st) {
            st.jobs[s] = Some(Job::Hold(r));
            this.set_holder(r, Arc::as_ptr(this.slot_parker(s)));
            drop(st);
            this.count_lend();
            this.slot_parker(s).unpark();
            return Lent::Yes;
        }
        let Some(s) = st.free.pop() else { return Lent::No };
        st.jobs[s] = Some(Job::Hold(r));
        this.set_holder(r, Arc::as_ptr(this.slot_parker(s)));
        // D1: the new thread's teardown share, taken by a party that holds one (us).
        this.add_share();
        match crate::runtime::thread::spawn_spare(this.clone(), s) {
            Ok(t) => {
                prune_finished(&mut st.threads);
                st.threads.push(t);
                drop(st);
                // Relaxed: statistics.
                this.board.spares_started.fetch_add(1, Relaxed);
                this.count_lend();
                Lent::Yes
            }
            Err(_) => {
                st.jobs[s] = None;
                st.free.push(s);
                // Still ours: we hold it and are awake, so no wake can be lost meanwhile.
                this.set_holder(r, std::ptr::null());
                drop(st);
                Shared::leave(this);
                Lent::No
            }
        }
    }

    fn count_lend(&self) {
        // Relaxed: statistics (a gauge and a count).
        self.board.lent.fetch_add(1, Relaxed);
        self.board.lends.fetch_add(1, Relaxed);
    }

    /// B2: takes a role for the calling thread, waiting for one if none is vacant.
    /// `parker` is the thread's own (a slot parker). `lent`: the thread lent its role at
    /// B1 (the `blocked` gauge).
    pub(crate) fn claim_role(&self, parker: &Arc<Parker>, lent: bool) -> usize {
        if lent {
            // Relaxed: a gauge for statistics.
            self.board.lent.fetch_sub(1, Relaxed);
        }
        let claim = Claim { parker: Arc::as_ptr(parker), granted: AtomicUsize::new(NONE) };
        {
            let mut st = self.board.lock();
            if let Some(r) = st.vacant.pop() {
                self.set_holder(r, Arc::as_ptr(parker));
                return r;
            }
            st.claims.push_back(&claim);
            // Relaxed: under the lock; the fence below orders it before the wake.
            self.board.claimants.fetch_add(1, Relaxed);
        }
        // B2, SeqCst fence: pairs with K3's fence, so a holder going to sleep either sees
        // our claim in its re-check or is seen asleep by the K2 below.
        mutation::fence(Site::RoleClaimFence, SeqCst);
        self.wake_one();
        loop {
            // B2, Acquire: pairs with the giver's Release in `grant`.
            let r = claim.granted.load(Acquire);
            if r != NONE {
                return r;
            }
            parker.park();
        }
    }

    /// B3: gives role `r` to the oldest claimant, if any; `true` if it did (the caller
    /// holds the role no more). The caller is not searching.
    pub(crate) fn give_role(&self, r: usize) -> bool {
        self.workers[r].role.touch();
        let mut st = self.board.lock();
        let Some(c) = st.claims.pop_front() else { return false };
        // Relaxed: under the lock.
        self.board.claimants.fetch_sub(1, Relaxed);
        // SAFETY: just taken off the queue under the lock.
        let p = unsafe { grant(self, r, c) };
        drop(st);
        unpark(p);
        true
    }

    /// B4: the holder of role `r` leaves its worker loop for good (shutdown): the role
    /// goes to a claimant, or becomes vacant.
    pub(crate) fn vacate_role(&self, r: usize) {
        if self.give_role(r) {
            return;
        }
        let mut st = self.board.lock();
        // A claim may have come between the two locks: serve it rather than leave it
        // waiting on a vacant role.
        if let Some(c) = st.claims.pop_front() {
            // Relaxed: under the lock.
            self.board.claimants.fetch_sub(1, Relaxed);
            // SAFETY: just taken off the queue under the lock.
            let p = unsafe { grant(self, r, c) };
            drop(st);
            unpark(p);
            return;
        }
        self.set_holder(r, std::ptr::null());
        st.vacant.push(r);
    }

    /// Takes slot `s` off the idle list (under the lock), if it is there.
    fn unlist_idle(&self, st: &mut BoardState, s: usize) {
        if let Some(i) = st.idle.iter().position(|&x| x == s) {
            st.idle.swap_remove(i);
            if s < self.board.workers {
                // Relaxed: under the lock.
                self.board.idle_workers.fetch_sub(1, Relaxed);
            }
        }
    }

    /// B3 for a spare at a task boundary with no claimant: hands role `r` to an idle
    /// worker thread, if there is one (`roles.rs`: roles go back to the pinned threads).
    pub(crate) fn give_role_to_idle_worker(&self, r: usize) -> bool {
        self.workers[r].role.touch();
        let mut st = self.board.lock();
        let Some(i) = st.idle.iter().position(|&x| x < self.board.workers) else { return false };
        let s = st.idle.swap_remove(i);
        // Relaxed: under the lock.
        self.board.idle_workers.fetch_sub(1, Relaxed);
        st.jobs[s] = Some(Job::Hold(r));
        self.set_holder(r, Arc::as_ptr(self.slot_parker(s)));
        drop(st);
        self.slot_parker(s).unpark();
        true
    }

    /// B5: an idle thread's wait for its next job (`s`: its slot). `None`: a spare thread
    /// stayed idle for the keep-alive time and has retired (its slot is free again);
    /// worker threads wait without a limit.
    pub(crate) fn next_job(&self, s: usize) -> Option<Job> {
        let parker = self.slot_parker(s);
        let spare = s >= self.board.workers;
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            {
                let mut st = self.board.lock();
                if let Some(job) = st.jobs[s].take() {
                    return Some(job);
                }
                if let Some(t) = st.blocking.pop_front() {
                    self.unlist_idle(&mut st, s);
                    return Some(Job::Run(t));
                }
                if self.is_shutting_down() {
                    self.unlist_idle(&mut st, s);
                    return Some(Job::Exit);
                }
                if !st.idle.contains(&s) {
                    st.idle.push(s);
                    if !spare {
                        // Relaxed: under the lock; a hint for spares (`spare_should_give`).
                        self.board.idle_workers.fetch_add(1, Relaxed);
                    }
                }
                if spare {
                    let now = Instant::now();
                    // A keep-alive too long to represent means "never retire".
                    let d = *deadline.get_or_insert_with(|| now.checked_add(self.board.keep_alive));
                    if d.is_some_and(|d| now >= d) {
                        self.unlist_idle(&mut st, s);
                        st.free.push(s);
                        // Relaxed: statistics.
                        self.board.spares_retired.fetch_add(1, Relaxed);
                        return None;
                    }
                }
            }
            parker.park_until(deadline.flatten());
        }
    }

    /// `spawn_blocking`: gives `t` to an idle thread, or a new spare thread below the
    /// limit; else it waits in the queue for the next thread that goes idle. `Err` hands
    /// it back when the scheduler is shutting down or no thread could be started.
    pub(crate) fn queue_blocking(this: &Arc<Shared>, t: TaskRef) -> Result<(), TaskRef> {
        let mut st = this.board.lock();
        if this.is_shutting_down() {
            return Err(t);
        }
        if let Some(s) = self_pop_idle(this, &mut st) {
            st.jobs[s] = Some(Job::Run(t));
            drop(st);
            this.slot_parker(s).unpark();
            return Ok(());
        }
        let Some(s) = st.free.pop() else {
            st.blocking.push_back(t);
            return Ok(());
        };
        st.jobs[s] = Some(Job::Run(t));
        // D1, as in `lend`; a caller from outside holds no share but an L1 entry
        // (`spawn_blocking_inner`), which keeps the count above zero as well.
        this.add_share();
        match crate::runtime::thread::spawn_spare(this.clone(), s) {
            Ok(h) => {
                prune_finished(&mut st.threads);
                st.threads.push(h);
                // Relaxed: statistics.
                this.board.spares_started.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(_) => {
                let Some(Job::Run(t)) = st.jobs[s].take() else { unreachable!("set above") };
                st.free.push(s);
                drop(st);
                Shared::leave(this);
                Err(t)
            }
        }
    }

    /// Shutdown: wakes the idle threads so that they see it and exit (after running the
    /// queued blocking tasks).
    pub(crate) fn wake_idle_threads(&self) {
        let idle: Vec<usize> = self.board.lock().idle.clone();
        for s in idle {
            self.slot_parker(s).unpark();
        }
    }

    /// Takes the queued blocking tasks (a timed-out shutdown drops them unrun).
    pub(crate) fn take_blocking(&self) -> Vec<TaskRef> {
        self.board.lock().blocking.drain(..).collect()
    }

    /// The blocking counters for `Stats` (`Stats::set_blocking`).
    pub(crate) fn blocking_stats(&self) -> crate::runtime::stats::Blocking {
        let b = &self.board;
        // Relaxed: statistics, read without ordering.
        let l = |c: &AtomicUsize| c.load(Relaxed) as u64;
        crate::runtime::stats::Blocking {
            blocked: l(&b.lent),
            lends: l(&b.lends),
            spares_started: l(&b.spares_started),
            spares_retired: l(&b.spares_retired),
        }
    }
}

/// Takes an idle thread's slot off the list (under the lock), worker threads first.
fn self_pop_idle(shared: &Shared, st: &mut BoardState) -> Option<usize> {
    let i =
        st.idle.iter().position(|&x| x < shared.board.workers).or_else(|| st.idle.len().checked_sub(1))?;
    let s = st.idle.swap_remove(i);
    if s < shared.board.workers {
        // Relaxed: under the lock.
        shared.board.idle_workers.fetch_sub(1, Relaxed);
    }
    Some(s)
}

/// Forgets the handles of spare threads that have exited (retired), so that a long-lived
/// scheduler does not collect one per spare ever started.
fn prune_finished(threads: &mut Vec<crate::shim::thread::JoinHandle<()>>) {
    #[cfg(not(loom))]
    threads.retain(|h| !h.is_finished());
    #[cfg(loom)]
    let _ = threads;
}
