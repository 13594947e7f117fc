//! `parallel_reduce`, `parallel_map` and `parallel_sort_unstable(_by)` against their
//! sequential definitions.
//!
//! Inputs are generated from `(seed, len, modulus)` so that large slices (past the sort's
//! leaf size, where it splits) stay cheap to generate and to shrink; `modulus` controls
//! how many duplicates there are (sort's equal-keys path). Every case runs on a two-worker
//! scheduler (splitting), and some on one worker and on the global scheduler via the
//! free functions.

use std::sync::OnceLock;

use filch::Scheduler;
use proptest::prelude::*;

fn two_workers() -> &'static Scheduler {
    static S: OnceLock<Scheduler> = OnceLock::new();
    S.get_or_init(|| Scheduler::builder().workers(2).build().unwrap())
}

fn one_worker() -> &'static Scheduler {
    static S: OnceLock<Scheduler> = OnceLock::new();
    S.get_or_init(|| Scheduler::builder().workers(1).build().unwrap())
}

/// `len` values from a splitmix64 sequence seeded with `seed`, reduced mod `modulus`.
fn input(seed: u64, len: usize, modulus: u64) -> Vec<u64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % modulus
        })
        .collect()
}

fn lengths() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..70, 70usize..5_000, 5_000usize..120_000]
}

fn moduli() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), 2u64..8, Just(u64::MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Reduce equals the sequential fold, for an associative but not commutative
    /// `combine` too (the leaves' results combine in index order).
    #[test]
    fn reduce_is_the_sequential_fold(seed: u64, len in lengths(), modulus in moduli()) {
        let v = input(seed, len, modulus);
        let sum = v.iter().fold(0u64, |a, &x| a.wrapping_add(x.wrapping_mul(3)));
        let s = two_workers();
        prop_assert_eq!(s.parallel_reduce(&v, || 0, |&x| x.wrapping_mul(3), u64::wrapping_add), sum);
        prop_assert_eq!(one_worker().parallel_reduce(&v, || 0, |&x| x.wrapping_mul(3), u64::wrapping_add), sum);
        // (first, last) index of a run: associative, not commutative.
        let ends = s.parallel_reduce(
            0..len,
            || None,
            |i| Some((i, i)),
            |a: Option<(usize, usize)>, b: Option<(usize, usize)>| match (a, b) {
                (Some((first, _)), Some((_, last))) => Some((first, last)),
                (a, None) => a,
                (None, b) => b,
            },
        );
        prop_assert_eq!(ends, (len > 0).then(|| (0, len - 1)));
    }

    /// Map equals the sequential map, element for element.
    #[test]
    fn map_is_the_sequential_map(seed: u64, len in lengths(), modulus in moduli()) {
        let v = input(seed, len, modulus);
        let want: Vec<u64> = v.iter().map(|&x| x ^ 0x5555).collect();
        prop_assert_eq!(two_workers().parallel_map(&v, |&x| x ^ 0x5555), want.clone());
        prop_assert_eq!(filch::parallel_map(&v, |&x| x ^ 0x5555), want);
        let idx: Vec<usize> = two_workers().parallel_map(0..len, |i| i);
        prop_assert!(idx.iter().enumerate().all(|(i, &j)| i == j));
    }

    /// Sorting equals the standard library's sort, ascending and by a custom order.
    #[test]
    fn sort_is_the_sequential_sort(seed: u64, len in lengths(), modulus in moduli()) {
        let v = input(seed, len, modulus);
        let mut want = v.clone();
        want.sort_unstable();
        let mut got = v.clone();
        two_workers().parallel_sort_unstable(&mut got);
        prop_assert_eq!(&got, &want);
        let mut got = v.clone();
        filch::parallel_sort_unstable_by(&mut got, |a, b| b.cmp(a));
        want.reverse();
        prop_assert_eq!(&got, &want);
        let mut got = v;
        one_worker().parallel_sort_unstable(&mut got);
        want.reverse();
        prop_assert_eq!(got, want);
    }
}
