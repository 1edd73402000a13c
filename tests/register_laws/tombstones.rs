//! A delete's tombstone: no value it saw comes back, whatever is merged
//! after it.

use crate::history::history;
use crate::oracle::sibling_dots;
use crate::witnessed::{join, History, Witnessed};
use proptest::prelude::*;

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn prop_a_deleted_value_never_comes_back(run in history()) {
        let pool = run.pool();
        for (which, after) in &run.deletes {
            let read = &run.reads[*which];
            // Whatever is merged later, no value the delete saw reappears.
            for x in &pool {
                let merged = join(after, x);
                for d in sibling_dots(&merged.reg) {
                    prop_assert!(!read.dots.contains(&d), "{:?} came back after a delete of {:?}", d, read.dots);
                }
                // A stale state, one the delete's read had seen all of,
                // changes nothing at all.
                if x.known.is_subset(&read.state.known) {
                    let mut s = after.clone();
                    prop_assert!(!s.absorb(x), "a stale state changed a deleted register");
                }
            }
            let mut s = after.clone();
            prop_assert!(!s.absorb(&read.state), "the state the delete read changed it");
        }
    }
}
