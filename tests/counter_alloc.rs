//! `merge` of counters allocates nothing unless an id comes or goes: a
//! global allocator that counts the allocations of the calling thread.
#![cfg(not(target_arch = "wasm32"))]

use edge_crdt::crdt::{Crdt, PnCounter};
use edge_crdt::NodeId;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations per thread.
struct Counting;

fn count_one() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Merges `other` into a copy of `state`: whether it changed, and how many
/// allocations the merge itself made.
fn merge_counting(state: &PnCounter, other: &PnCounter) -> (bool, usize) {
    let mut copy = state.clone();
    let before = ALLOCATIONS.with(Cell::get);
    let changed = copy.merge(other);
    (changed, ALLOCATIONS.with(Cell::get) - before)
}

/// Applies the delta that `op` makes of `c`; the delta.
fn step(c: &mut PnCounter, op: impl FnOnce(&PnCounter) -> PnCounter) -> PnCounter {
    let delta = op(c);
    c.merge(&delta);
    delta
}

/// 64 live nodes, decrements at every 8th, nodes 64..68 retired into
/// nodes 0, 9, 18 and 27 (node 66 with a decrement too); also an early
/// state, an old delta and a delta of a retired node from before it retired.
fn states() -> (PnCounter, [PnCounter; 3]) {
    let mut c = PnCounter::default();
    let mut stale = PnCounter::default();
    for i in 0..68u32 {
        let d = c
            .add(NodeId(i), 1000 + i64::from(i) * 4099 % 300_000)
            .unwrap();
        stale = step(&mut c, |_| d);
    }
    let early = c.clone();
    let old = step(&mut c, |x| x.add(NodeId(5), 1).unwrap());
    step(&mut c, |x| x.add(NodeId(66), -40).unwrap());
    for i in (0..64).step_by(8) {
        step(&mut c, |x| {
            x.add(NodeId(i), -(i64::from(i) * 37 + 5)).unwrap()
        });
    }
    for (r, h) in [(64, 0), (65, 9), (66, 18), (67, 27)] {
        step(&mut c, |x| x.absorb(NodeId(r), NodeId(h)).unwrap());
    }
    step(&mut c, |x| x.add(NodeId(5), 1).unwrap());
    assert_eq!(c.increments().entries().len(), 64);
    assert_eq!(c.retired().len(), 4);
    (c, [early, old, stale])
}

#[test]
fn merge_that_changes_nothing_allocates_nothing() {
    let (state, [early, old, stale]) = states();
    let others = [
        ("an equal state", state.clone()),
        ("an earlier state", early),
        ("an old delta", old),
        ("a delta of a node since retired", stale),
        ("an empty state", PnCounter::default()),
    ];
    for (what, other) in &others {
        assert_eq!(merge_counting(&state, other), (false, 0), "{what}");
    }
}

#[test]
fn merge_that_only_raises_counts_allocates_nothing() {
    let (state, _) = states();
    let mut later = state.clone();
    for i in [3, 17, 40] {
        step(&mut later, |x| x.add(NodeId(i), 250).unwrap());
    }
    let heir = later.add(NodeId(9), 1).unwrap();
    assert_eq!(
        heir.retired().len(),
        1,
        "the heir's delta carries its record"
    );
    assert_eq!(merge_counting(&state, &later), (true, 0));
    assert_eq!(merge_counting(&state, &heir), (true, 0));
}

#[test]
fn the_allocations_are_counted() {
    // A new id needs room: the count must see that allocation, else the
    // zeros above prove nothing.
    let (state, _) = states();
    let newcomer = state.add(NodeId(100), 1).unwrap();
    let (changed, allocations) = merge_counting(&state, &newcomer);
    assert!(changed);
    assert!(allocations > 0);
}
