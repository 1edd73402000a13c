//! Helpers shared by the property-test files.

use proptest::collection::vec;
use proptest::prelude::*;

/// `messages` with random duplicates added, in a random order: what an
/// at-least-once network without ordering delivers.
pub fn duplicated_and_shuffled<T: Clone + std::fmt::Debug>(
    messages: Vec<T>,
) -> impl Strategy<Value = Vec<T>> {
    let len = messages.len();
    vec(0..len.max(1), 0..=len).prop_flat_map(move |dups| {
        let mut all = messages.clone();
        all.extend(
            dups.iter()
                .filter(|_| len > 0)
                .map(|i| messages[*i].clone()),
        );
        Just(all).prop_shuffle()
    })
}

/// Calls `f` on every permutation of `items` (Heap's algorithm).
pub fn for_each_permutation<T: Clone>(items: &[T], mut f: impl FnMut(&[T])) {
    let mut a = items.to_vec();
    let mut c = vec![0; a.len()];
    f(&a);
    let mut i = 0;
    while i < a.len() {
        if c[i] < i {
            if i % 2 == 0 {
                a.swap(0, i);
            } else {
                a.swap(c[i], i);
            }
            f(&a);
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}
