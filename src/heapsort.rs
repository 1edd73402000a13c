//! One small sort for the code the Worker carries.
//!
//! `slice::sort_unstable` instantiates its quicksort, sorting networks and
//! fallbacks for every element type and every comparison closure: 2 to 7 KiB
//! of wasm each time. A heapsort is a few hundred bytes per instantiation,
//! and O(n log n) in the worst case. Like `sort_unstable`, it does not keep
//! the order of equal elements.

/// Sorts `v` in ascending order.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b)
}

/// Sorts `v` in ascending order and drops repeats.
pub fn sort_dedup<T: Ord>(v: &mut Vec<T>) {
    sort(v);
    v.dedup();
}

/// Sorts `v` so that no element is `less` than one before it.
pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let len = v.len();
    // A max-heap first, then the largest goes to the end, one by one.
    for node in (0..len / 2).rev() {
        sift_down(v, node, len, &mut less);
    }
    for end in (1..len).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &mut less);
    }
}

/// Moves `v[node]` down the heap `v[..end]` until no child is larger.
fn sift_down<T>(v: &mut [T], mut node: usize, end: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(&v[child], &v[child + 1]) {
            child += 1;
        }
        if !less(&v[node], &v[child]) {
            return;
        }
        v.swap(node, child);
        node = child;
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod test {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sorts_as_the_standard_library_does(mut v in proptest::collection::vec(0u8..20, 0..200)) {
            let mut expected = v.clone();
            expected.sort();
            sort(&mut v);
            prop_assert_eq!(v, expected);
        }

        #[test]
        fn sorts_by_a_key_and_keeps_every_element(mut v in proptest::collection::vec((0u8..8, any::<u16>()), 0..100)) {
            let mut expected = v.clone();
            sort_by(&mut v, |a, b| a.0 < b.0);
            prop_assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
            v.sort();
            expected.sort();
            prop_assert_eq!(v, expected);
        }

        #[test]
        fn sort_dedup_leaves_each_value_once(mut v in proptest::collection::vec(0u8..20, 0..100)) {
            let mut expected = v.clone();
            expected.sort();
            expected.dedup();
            sort_dedup(&mut v);
            prop_assert_eq!(v, expected);
        }
    }
}
