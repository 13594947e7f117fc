//! A hierarchical timer wheel: deadlines in, due values out, O(1) insert and remove.
//!
//! Time is counted in ticks of [`TICK`] (1 ms) since the wheel's `origin`. The wheel has
//! [`LEVELS`] levels of [`SLOTS`] slots; a slot of level `k` spans `64^k` ticks, so each
//! level spans 64 slots of the level below:
//!
//! | level | one slot spans | the level spans |
//! |-------|----------------|-----------------|
//! | 0     | 1 ms           | 64 ms           |
//! | 1     | 64 ms          | 4.1 s           |
//! | 2     | 4.1 s          | 4.4 min         |
//! | 3     | 4.4 min        | 4.7 h           |
//! | 4     | 4.7 h          | 12.4 days       |
//! | 5     | 12.4 days      | 2.2 years       |
//!
//! # Placement
//!
//! `elapsed` is the wheel's current tick. An entry's *tick* is its deadline rounded up to a
//! tick (a deadline before `origin` has tick 0); an entry whose tick is already behind
//! `elapsed` (*overdue*) is placed at `elapsed`. The placement tick `p` goes to the level of
//! the highest 6-bit digit in which `p` and `elapsed` differ, into the slot numbered by that
//! digit of `p` (the Linux and tokio scheme). Level 5 is a ring: a slot numbered below the
//! current level-5 digit stands for the next turn, so the wheel reaches `2^36` ticks past the
//! start of the current level-5 slot. A tick beyond that is *parked*: placed in the level-5
//! slot one turn ahead (63 slots on) and placed again when that slot is reached, until it is
//! in range.
//!
//! # Invariants
//!
//! - **W1**: every pending entry is in exactly one slot list, and bit `s` of
//!   `occupied[k]` is set iff list `heads[k][s]` is non-empty.
//! - **W2**: a slot's *start* (the first tick it covers, computed by `next_slot`) is at or
//!   after `elapsed` and at or before the placement tick of every entry in it; an occupied
//!   slot of level `k > 0` never covers `elapsed` (reaching its start empties it).
//! - **W3**: a level-0 slot holds only entries whose tick is at or before its start (its
//!   own tick, or an overdue tick); parked entries sit in level 5 only.
//!
//! # Expiry, and the "never early" rule
//!
//! `expire(now)` visits the occupied slots in order of start, up to `target`, the later of
//! `elapsed` and `now` rounded up to a tick; it jumps from one occupied slot to the next
//! through the occupancy bitmaps, so a long gap costs nothing per empty tick. A slot of
//! level `k > 0` is *cascaded*: its entries are placed again relative to its start, which
//! puts each one in a lower level (or, if parked, a later level-5 slot). A level-0 slot is
//! *fired*: an entry is handed to `fire` iff `deadline <= now`, compared as `Instant`s;
//! ticks only choose which slots to look in. A level-0 slot before `target` holds only due
//! entries (its tick `t < target` gives `deadline <= t ms < now`), so only the slot at
//! `target` can keep some; they stay in place and are visited again by the next `expire`.
//! No slot above level 0 starts at the same tick as an occupied level-0 slot (it would
//! cover `elapsed`, against W2), so every cascade into the slot at `target` comes before it
//! is fired. Cost of one call: O(LEVELS) per entry fired or cascaded (an entry cascades at
//! most once per level, plus once per turn of level 5 while parked), plus the entries left
//! in the slot at `target`. A `now` before an earlier one leaves `elapsed` as it is and
//! fires only entries due by the `now` given.
//!
//! # Slab and keys
//!
//! Entries live in one `Vec` (the slab); each slot list is doubly linked through the
//! entries' `prev`/`next` indices ([`NIL`] ends a list), and free entries form a singly
//! linked free list through `next`. A freed entry is reused by the next insert, so the slab
//! grows only when more entries are pending than ever before, and a wheel at a steady
//! pending count allocates nothing. A [`Key`] is an index and the entry's generation, which
//! is bumped on every free: a key whose entry fired or was removed no longer matches (a
//! stale key could only match again after 2^32 reuses of the same entry). The slab holds at
//! most `u32::MAX - 1` entries (over 150 GiB at 40 bytes or more each); an insert beyond
//! that drops its value and returns a key that is already stale.

use std::time::{Duration, Instant};

/// Levels in the wheel.
pub(crate) const LEVELS: usize = 6;
/// Slots in one level.
pub(crate) const SLOTS: usize = 1 << SLOT_BITS;
/// One tick: the wheel's granularity.
pub(crate) const TICK: Duration = Duration::from_millis(TICK_MS);

const TICK_MS: u64 = 1;
const TICK_NANOS: u128 = TICK.as_nanos();
const SLOT_BITS: usize = 6;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Ticks in one level-5 slot, and in the whole ring of level 5.
const TOP_SLOT_SPAN: u64 = 1 << (SLOT_BITS * (LEVELS - 1));
const RING_SPAN: u64 = 1 << (SLOT_BITS * LEVELS);
/// Ticks saturate here (about 1.5e8 years), far below where the `u64` arithmetic of
/// placement (`elapsed + RING_SPAN`) could overflow.
const MAX_TICK: u64 = 1 << 62;
/// Ends a slot list or the free list.
const NIL: u32 = u32::MAX;
/// The slab's capacity in entries; indices run below it, so none can be `NIL`.
const MAX_ENTRIES: u32 = u32::MAX - 1;

/// Identifies one inserted entry; stale once the entry fired or was removed (generation check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

/// One slab entry: pending while `value` is `Some`, otherwise on the free list.
struct Entry<T> {
    value: Option<T>,
    deadline: Instant,
    /// The deadline rounded up to a tick, saturated at `MAX_TICK`.
    tick: u64,
    /// Bumped on every free, so that keys to the previous occupant go stale.
    generation: u32,
    prev: u32,
    next: u32,
    /// The list this entry is linked in while pending.
    level: u8,
    slot: u8,
    /// Inserted with a tick behind `elapsed`; counted in `Wheel::overdue`.
    overdue: bool,
}

/// A hierarchical timer wheel holding values of type `T` until their deadlines.
pub(crate) struct Wheel<T> {
    origin: Instant,
    /// The current tick: all slots before it are empty (W2).
    elapsed: u64,
    slab: Vec<Entry<T>>,
    free: u32,
    len: usize,
    heads: [[u32; SLOTS]; LEVELS],
    /// Bit `s` of `occupied[k]` is set iff `heads[k][s]` is a non-empty list (W1).
    occupied: [u64; LEVELS],
    /// Pending entries with `overdue` set.
    overdue: usize,
    /// While `overdue > 0`: at or before the deadline of every overdue entry (it may be
    /// earlier than the earliest once that one is removed).
    overdue_bound: Instant,
}

impl<T> Wheel<T> {
    /// A wheel whose tick 0 is `origin`; ticks are [`TICK`] long.
    pub(crate) fn new(origin: Instant) -> Self {
        Wheel {
            origin,
            elapsed: 0,
            slab: Vec::new(),
            free: NIL,
            len: 0,
            heads: [[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            overdue: 0,
            overdue_bound: origin,
        }
    }

    /// Adds `value`, due at `deadline`, in O(1) amortized time (no allocation unless more
    /// entries are pending than ever before). A deadline at or before the wheel's time
    /// fires at the next `expire` whose `now` is at or after it; a deadline beyond the
    /// wheel's range (2.2 years) is parked and placed again as time advances.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> Key {
        let tick = self.tick_ceil(deadline);
        let overdue = tick < self.elapsed;
        let entry = Entry {
            value: Some(value),
            deadline,
            tick,
            generation: 0,
            prev: NIL,
            next: NIL,
            level: 0,
            slot: 0,
            overdue,
        };
        let index = if self.free != NIL {
            let index = self.free;
            let reused = &mut self.slab[index as usize];
            self.free = reused.next;
            *reused = Entry { generation: reused.generation, ..entry };
            index
        } else {
            match u32::try_from(self.slab.len()) {
                Ok(index) if index < MAX_ENTRIES => {
                    self.slab.push(entry);
                    index
                }
                // The slab is full (see the module docs): `value` is dropped here.
                _ => return Key { index: NIL, generation: 0 },
            }
        };
        if overdue {
            if self.overdue == 0 || deadline < self.overdue_bound {
                self.overdue_bound = deadline;
            }
            self.overdue += 1;
        }
        self.len += 1;
        self.link(index);
        Key { index, generation: self.slab[index as usize].generation }
    }

    /// Takes the entry out in O(1); `None` if the key is stale (fired, removed, or never
    /// from this wheel).
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        if !self.is_pending(key) {
            return None;
        }
        self.unlink(key.index);
        self.release(key.index)
    }

    /// Whether `key` is still pending (inserted, not fired, not removed).
    pub(crate) fn is_pending(&self, key: Key) -> bool {
        self.entry(key).is_some()
    }

    /// Mutable access to a pending entry's value; `None` if the key is stale.
    pub(crate) fn value_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.slab.get_mut(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.value.as_mut()
    }

    #[cfg(test)]
    /// The deadline a pending entry was inserted with; `None` if the key is stale.
    pub(crate) fn deadline(&self, key: Key) -> Option<Instant> {
        self.entry(key).map(|entry| entry.deadline)
    }

    /// When to call `expire` next, in O(LEVELS); `None` iff the wheel is empty.
    ///
    /// The instant returned is never later than the earliest pending deadline rounded up
    /// to a tick boundary (`origin + k * TICK` for the least such `k` at or after it, or
    /// `origin` for a deadline before it), so an `expire` at that instant fires the entry
    /// at most one tick late. It may be earlier: for a slot of a higher level it is the
    /// slot's start, and an `expire` then only cascades. After `expire(now)` with `now` at
    /// or after every earlier `now`, it is later than `now`.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let (_, _, start) = self.next_slot()?;
        let at = self.tick_instant(start);
        // Overdue entries sit in the slot at `elapsed`, whose start is after their ticks.
        Some(if self.overdue > 0 { at.min(self.overdue_bound) } else { at })
    }

    /// Hands every pending entry whose deadline is at or before `now`, and only those, to
    /// `fire`; returns how many. Each entry fires at most once. A `now` before an earlier
    /// one does not move the wheel's time back. See the module docs for the walk and its
    /// cost. If `fire` panics, the entries not yet visited stay pending.
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(T)) -> usize {
        let target = self.tick_ceil(now).max(self.elapsed);
        let mut reached = target;
        let mut fired = 0;
        while let Some((level, slot, start)) = self.next_slot() {
            if start > target {
                break;
            }
            // W2: `start >= elapsed`, so time only moves forward here.
            self.elapsed = start;
            if level > 0 {
                self.cascade(level, slot);
                continue;
            }
            fired += self.fire_due(slot, now, &mut fire);
            if self.occupied[0] & (1 << slot) != 0 {
                // Entries not yet due: by the argument in the module docs this is the slot
                // at `target`. Stopping here keeps W2 even if it were not.
                reached = start;
                break;
            }
        }
        self.elapsed = reached;
        fired
    }

    #[cfg(test)]
    /// Pending entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    /// Whether no entry is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes every pending entry out, calling `f` on each value; their keys go stale.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(T)) {
        for level in 0..LEVELS {
            while self.occupied[level] != 0 {
                let slot = self.occupied[level].trailing_zeros() as usize;
                let index = self.heads[level][slot];
                self.unlink(index);
                if let Some(value) = self.release(index) {
                    f(value);
                }
            }
        }
    }

    fn entry(&self, key: Key) -> Option<&Entry<T>> {
        self.slab
            .get(key.index as usize)
            .filter(|entry| entry.generation == key.generation && entry.value.is_some())
    }

    /// `t` rounded up to a tick; 0 for an instant at or before `origin`.
    fn tick_ceil(&self, t: Instant) -> u64 {
        let Some(since) = t.checked_duration_since(self.origin) else { return 0 };
        u64::try_from(since.as_nanos().div_ceil(TICK_NANOS)).map_or(MAX_TICK, |tick| tick.min(MAX_TICK))
    }

    /// The instant tick `tick` starts; `origin` (early, never late) if it is not representable.
    fn tick_instant(&self, tick: u64) -> Instant {
        tick.checked_mul(TICK_MS)
            .and_then(|ms| self.origin.checked_add(Duration::from_millis(ms)))
            .unwrap_or(self.origin)
    }

    /// The occupied slot with the earliest start, as `(level, slot, start)`; ties (only
    /// between levels above 0, see the module docs) go to the higher level.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for (level, &bits) in self.occupied.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            let shift = SLOT_BITS * level;
            let current = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            // The first occupied slot at or after the current one, going round the ring.
            let slot = (current + bits.rotate_right(current).trailing_zeros()) % SLOTS as u32;
            let level_span = 1u64 << (shift + SLOT_BITS);
            let mut start = (self.elapsed & !(level_span - 1)) + (u64::from(slot) << shift);
            if slot < current {
                // Only in level 5 (W2): a slot of the ring's next turn.
                start += level_span;
            }
            if best.is_none_or(|(_, _, earliest)| start <= earliest) {
                best = Some((level, slot as usize, start));
            }
        }
        best
    }

    /// Links pending entry `index` into the slot for its tick relative to `elapsed`.
    fn link(&mut self, index: u32) {
        let elapsed = self.elapsed;
        let tick = self.slab[index as usize].tick.max(elapsed);
        let top_start = elapsed & !(TOP_SLOT_SPAN - 1);
        let place = if tick < top_start + RING_SPAN {
            tick
        } else {
            // Parked: the level-5 slot one turn ahead, 63 slots on from the current one.
            top_start + RING_SPAN - TOP_SLOT_SPAN
        };
        // `| SLOT_MASK` keeps the highest set bit at 5 or more, so level 0 is the least.
        let highest = 63 - ((elapsed ^ place) | SLOT_MASK).leading_zeros() as usize;
        let level = (highest / SLOT_BITS).min(LEVELS - 1);
        let slot = ((place >> (SLOT_BITS * level)) & SLOT_MASK) as usize;
        let head = self.heads[level][slot];
        let entry = &mut self.slab[index as usize];
        entry.prev = NIL;
        entry.next = head;
        entry.level = level as u8;
        entry.slot = slot as u8;
        if head != NIL {
            self.slab[head as usize].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1 << slot;
    }

    /// Unlinks entry `index` from its slot list, clearing the occupancy bit if it empties.
    fn unlink(&mut self, index: u32) {
        let entry = &self.slab[index as usize];
        let (prev, next, level, slot) = (entry.prev, entry.next, entry.level as usize, entry.slot as usize);
        if prev == NIL {
            self.heads[level][slot] = next;
            if next == NIL {
                self.occupied[level] &= !(1 << slot);
            }
        } else {
            self.slab[prev as usize].next = next;
        }
        if next != NIL {
            self.slab[next as usize].prev = prev;
        }
    }

    /// Frees unlinked entry `index` onto the free list and returns its value.
    fn release(&mut self, index: u32) -> Option<T> {
        let entry = &mut self.slab[index as usize];
        let value = entry.value.take();
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free;
        if entry.overdue {
            self.overdue -= 1;
        }
        self.free = index;
        self.len -= 1;
        value
    }

    /// Places every entry of a level `> 0` slot again relative to `elapsed`, its start:
    /// each lands in a lower level, or a later level-5 slot if parked.
    fn cascade(&mut self, level: usize, slot: usize) {
        let mut index = self.heads[level][slot];
        self.heads[level][slot] = NIL;
        self.occupied[level] &= !(1 << slot);
        while index != NIL {
            let next = self.slab[index as usize].next;
            self.link(index);
            index = next;
        }
    }

    /// Fires the entries of level-0 slot `slot` that are due by `now`; the rest stay.
    fn fire_due(&mut self, slot: usize, now: Instant, fire: &mut impl FnMut(T)) -> usize {
        let mut fired = 0;
        let mut index = self.heads[0][slot];
        while index != NIL {
            let entry = &self.slab[index as usize];
            let next = entry.next;
            if entry.deadline <= now {
                // Unlinked and freed before `fire` runs, so a panic in it leaves W1 intact.
                self.unlink(index);
                if let Some(value) = self.release(index) {
                    fired += 1;
                    fire(value);
                }
            }
            index = next;
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    const HOUR: u64 = 3_600_000;
    const YEAR: u64 = 365 * 24 * HOUR;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn nanos(n: u128) -> Duration {
        Duration::new(u64::try_from(n / 1_000_000_000).unwrap(), (n % 1_000_000_000) as u32)
    }

    fn fired_by(wheel: &mut Wheel<u64>, now: Instant) -> Vec<u64> {
        let mut fired = Vec::new();
        assert_eq!(wheel.expire(now, |v| fired.push(v)), fired.len());
        fired.sort();
        fired
    }

    /// The bound `next_deadline` promises: `deadline` rounded up to a tick boundary.
    fn tick_up(origin: Instant, deadline: Instant) -> Instant {
        let Some(since) = deadline.checked_duration_since(origin) else { return origin };
        origin + nanos(since.as_nanos().div_ceil(TICK_NANOS) * TICK_NANOS)
    }

    #[test]
    fn fires_in_deadline_order() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        for (v, at) in [(3, 300), (1, 5), (4, 70_000), (2, 64)] {
            wheel.insert(origin + ms(at), v);
        }
        let mut order = Vec::new();
        while let Some(next) = wheel.next_deadline() {
            order.extend(fired_by(&mut wheel, next));
        }
        assert_eq!(order, [1, 2, 3, 4]);
    }

    #[test]
    fn never_fires_early_within_a_tick() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let key = wheel.insert(origin + Duration::from_micros(1500), 7);
        assert!(fired_by(&mut wheel, origin + Duration::from_micros(1400)).is_empty());
        assert!(wheel.is_pending(key));
        assert_eq!(fired_by(&mut wheel, origin + Duration::from_micros(1500)), [7]);
        assert!(!wheel.is_pending(key) && wheel.is_empty());
    }

    #[test]
    fn past_deadlines_fire_on_next_expire() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        assert!(fired_by(&mut wheel, origin + ms(1000)).is_empty());
        wheel.insert(origin + ms(10), 1);
        wheel.insert(origin.checked_sub(ms(1)).unwrap_or(origin), 2);
        wheel.insert(origin + ms(1000), 3);
        assert!(wheel.next_deadline().unwrap() <= origin);
        assert_eq!(fired_by(&mut wheel, origin + ms(1000)), [1, 2, 3]);
    }

    #[test]
    fn keys_go_stale_on_remove_fire_and_reuse() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let (a, b) = (wheel.insert(origin + ms(5), 1), wheel.insert(origin + ms(5), 2));
        assert_eq!(wheel.remove(a), Some(1));
        assert_eq!(wheel.remove(a), None);
        assert_eq!(fired_by(&mut wheel, origin + ms(10)), [2]);
        assert!(wheel.remove(b).is_none() && wheel.value_mut(b).is_none() && wheel.deadline(b).is_none());
        let c = wheel.insert(origin + ms(19), 3);
        assert!(c.index == b.index && !wheel.is_pending(b) && wheel.remove(b).is_none());
        *wheel.value_mut(c).unwrap() = 4;
        assert_eq!(wheel.deadline(c), Some(origin + ms(19)));
        assert_eq!(wheel.remove(c), Some(4));
    }

    #[test]
    fn long_jump_fires_only_due() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        for (v, at) in [(1, 1000), (2, HOUR), (3, 2 * HOUR), (5, 5 * HOUR)] {
            wheel.insert(origin + ms(at), v);
        }
        assert_eq!(fired_by(&mut wheel, origin + ms(3 * HOUR)), [1, 2, 3]);
        assert!(wheel.len() == 1 && wheel.next_deadline().unwrap() <= origin + ms(5 * HOUR));
        assert!(fired_by(&mut wheel, origin + ms(5 * HOUR - 1)).is_empty());
        assert_eq!(fired_by(&mut wheel, origin + ms(5 * HOUR)), [5]);
    }

    /// Parked entries, and level-5 slots in the ring's next turn (numbered below the
    /// current level-5 slot), fire when reached and not before.
    #[test]
    fn beyond_range_and_next_turn_never_early() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let mut now = origin + ms(40 * TOP_SLOT_SPAN + 5);
        wheel.expire(now, |_| {});
        let next_turn = now + ms(RING_SPAN - 2 * TOP_SLOT_SPAN);
        let far = now + ms(5 * YEAR) + Duration::from_micros(300);
        wheel.insert(next_turn, 1);
        wheel.insert(far, 2);
        for (v, at) in [(1, next_turn), (2, far)] {
            while now < at - ms(YEAR / 3) {
                now += ms(YEAR / 3);
                assert!(fired_by(&mut wheel, now).is_empty());
                assert!(wheel.next_deadline().unwrap() <= tick_up(origin, at));
            }
            assert!(fired_by(&mut wheel, at - Duration::from_nanos(1)).is_empty());
            assert_eq!(fired_by(&mut wheel, at), [v]);
            now = at;
        }
    }

    #[test]
    fn next_deadline_bound() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        assert_eq!(wheel.next_deadline(), None);
        let mut pending = Vec::new();
        for (id, us) in [250_000_000, 1_700, 90_000_000, 3_000, 64_500].into_iter().enumerate() {
            let at = origin + Duration::from_micros(us);
            pending.push((id as u64, at));
            wheel.insert(at, id as u64);
        }
        while let Some(next) = wheel.next_deadline() {
            assert!(next <= tick_up(origin, pending.iter().map(|&(_, d)| d).min().unwrap()));
            let fired = fired_by(&mut wheel, next);
            pending.retain(|(id, _)| !fired.contains(id));
            assert!(wheel.next_deadline().is_none_or(|after| after > next));
        }
        assert!(pending.is_empty() && wheel.is_empty());
    }

    #[test]
    fn drain_takes_everything() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let keys: Vec<Key> = (0..200).map(|i| wheel.insert(origin + ms(i * i * 1000), i)).collect();
        let mut drained = Vec::new();
        wheel.drain(|v| drained.push(v));
        drained.sort();
        assert_eq!(drained, (0..200).collect::<Vec<_>>());
        assert!(wheel.is_empty() && wheel.next_deadline().is_none());
        assert!(keys.iter().all(|&k| !wheel.is_pending(k)));
    }

    #[test]
    fn steady_pending_count_does_not_grow_the_slab() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        let mut keys: Vec<Key> = (0..100).map(|i| wheel.insert(origin + ms(i), i)).collect();
        let capacity = wheel.slab.capacity();
        let mut now = origin;
        for round in 0..10_000u64 {
            let at = now + ms(round % 97);
            if round % 2 == 0 {
                assert!(wheel.remove(keys.swap_remove(round as usize % keys.len())).is_some());
                keys.push(wheel.insert(at, round));
            } else {
                now += ms(1);
                let fired = wheel.expire(now, |_| {}) as u64;
                keys.retain(|&k| wheel.is_pending(k));
                keys.extend((0..fired).map(|i| wheel.insert(at + ms(i), round)));
            }
            assert_eq!(wheel.len(), 100);
        }
        assert_eq!((wheel.slab.len(), wheel.slab.capacity()), (100, capacity));
    }

    #[test]
    fn earlier_now_fires_nothing_not_due() {
        let origin = Instant::now();
        let mut wheel = Wheel::new(origin);
        wheel.insert(origin + ms(50), 1);
        assert!(fired_by(&mut wheel, origin + ms(40)).is_empty());
        wheel.insert(origin + ms(30), 2);
        assert!(fired_by(&mut wheel, origin + ms(20)).is_empty());
        assert_eq!(fired_by(&mut wheel, origin + ms(40)), [2]);
        assert_eq!(fired_by(&mut wheel, origin + ms(50)), [1]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Deadline `ns` after the model's time, or (if `past`) up to 5 ms before it.
        Insert { past: bool, ns: u64 },
        /// One of the keys ever handed out, pending or stale.
        Remove(usize),
        /// Moves time `ns` forward, or (if `back`) calls `expire` up to 5 ms in the past.
        Expire { back: bool, ns: u64 },
    }

    /// Sub-tick to few-tick steps, up to 18 minutes (levels 0-3), and up to 146 years.
    fn span() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0u64..3_000_000, 3 => 0u64..1 << 40, 1 => 0u64..1 << 62]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (any::<bool>(), span()).prop_map(|(past, ns)| Op::Insert { past, ns }),
            2 => any::<usize>().prop_map(Op::Remove),
            4 => (prop::bool::weighted(0.1), span()).prop_map(|(back, ns)| Op::Expire { back, ns }),
        ]
    }

    /// `origin` moved by `ns`, which may be negative down to 5 ms before `origin`.
    fn at(origin: Instant, ns: i128) -> Instant {
        if ns >= 0 {
            origin + nanos(ns.unsigned_abs())
        } else {
            origin.checked_sub(nanos(ns.unsigned_abs().min(5_000_000))).unwrap_or(origin)
        }
    }

    proptest! {
        /// After every step: `expire` fired exactly the model's entries due by its `now`,
        /// none twice; `len`, `is_pending` and `deadline` agree with the model;
        /// `next_deadline` is `Some` iff pending, never after the earliest deadline rounded
        /// up to a tick, and after a forward `expire(now)` later than `now`.
        #[test]
        fn matches_a_sorted_model(ops in prop::collection::vec(op(), 1..200)) {
            let origin = Instant::now();
            let mut wheel = Wheel::new(origin);
            // id -> deadline of the pending entries; `keys[id]` for every insert.
            let mut model: BTreeMap<u64, Instant> = BTreeMap::new();
            let mut keys: Vec<Key> = Vec::new();
            let mut fired_ever = BTreeSet::new();
            let mut time_ns: i128 = 0;
            for op in ops {
                let mut forward = None;
                match op {
                    Op::Insert { past, ns } => {
                        let offset = if past { -i128::from(ns % 5_000_000) } else { i128::from(ns) };
                        let deadline = at(origin, time_ns + offset);
                        keys.push(wheel.insert(deadline, keys.len() as u64));
                        model.insert(keys.len() as u64 - 1, deadline);
                    }
                    Op::Remove(pick) if !keys.is_empty() => {
                        let id = (pick % keys.len()) as u64;
                        prop_assert_eq!(wheel.remove(keys[id as usize]), model.remove(&id).map(|_| id));
                    }
                    Op::Remove(_) => {}
                    Op::Expire { back, ns } => {
                        let now = if back {
                            at(origin, time_ns - i128::from(ns % 5_000_000))
                        } else {
                            time_ns += i128::from(ns);
                            *forward.insert(at(origin, time_ns))
                        };
                        let mut fired = Vec::new();
                        prop_assert_eq!(wheel.expire(now, |id| fired.push(id)), fired.len());
                        for &id in &fired {
                            prop_assert!(fired_ever.insert(id), "fired twice: {}", id);
                        }
                        fired.sort();
                        let due: Vec<u64> =
                            model.iter().filter(|&(_, &d)| d <= now).map(|(&id, _)| id).collect();
                        model.retain(|_, &mut d| d > now);
                        prop_assert_eq!(fired, due);
                    }
                }
                prop_assert_eq!((wheel.len(), wheel.is_empty()), (model.len(), model.is_empty()));
                for (id, &key) in keys.iter().enumerate() {
                    let pending = model.get(&(id as u64)).copied();
                    prop_assert_eq!(wheel.is_pending(key), pending.is_some());
                    prop_assert_eq!(wheel.deadline(key), pending);
                }
                let next = wheel.next_deadline();
                prop_assert_eq!(next.is_some(), !model.is_empty());
                if let (Some(next), Some(&earliest)) = (next, model.values().min()) {
                    prop_assert!(next <= tick_up(origin, earliest));
                    prop_assert!(forward.is_none_or(|now| next > now), "{:?} not after {:?}", next, forward);
                }
            }
        }
    }
}
