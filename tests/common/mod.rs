//! Helpers shared by the property-test files.

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
