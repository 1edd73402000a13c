//! After the load: wait until every node agrees, then until every viewer
//! shows what the nodes agree on.

use crate::clock::sleep_ms;
use crate::http::Http;
use crate::set_api::{read_node, NodeView};
use crate::shared::Shared;
use crate::workers::Viewer;
use std::time::{Duration, Instant};

pub struct Quiet {
    pub converged: bool,
    /// from the end of the load to the end of the first poll of the
    /// agreeing run: an upper bound, to within one poll
    pub after: Duration,
    pub views: Vec<Result<NodeView, String>>,
}

impl Quiet {
    /// The first node's view: the one all agree on, when they converged.
    pub fn agreed(&self) -> Option<&NodeView> {
        self.views.first().and_then(|v| v.as_ref().ok())
    }
}

/// Polls every node until all give the same members and `latest` for
/// `streak` polls in a row, or until `timeout`.
pub fn quiesce(shared: &Shared, stopped: Instant, timeout: Duration, streak: u32) -> Quiet {
    let http = Http::new(&shared.opts.base, Duration::from_secs(10));
    let mut run = 0;
    let mut run_start = stopped;
    loop {
        let views: Vec<_> = (0..shared.opts.nodes)
            .map(|n| read_node(&http, &shared.set_path, n))
            .collect();
        if all_agree(&views) {
            if run == 0 {
                // Every node read here already held every acknowledged
                // write (the node that took the last one has it, and all
                // agree), so the nodes agreed by the end of it.
                run_start = Instant::now();
            }
            run += 1;
            if run >= streak {
                return Quiet {
                    converged: true,
                    after: run_start.saturating_duration_since(stopped),
                    views,
                };
            }
        } else {
            run = 0;
        }
        if stopped.elapsed() >= timeout {
            return Quiet {
                converged: false,
                after: stopped.elapsed(),
                views,
            };
        }
        sleep_ms(50);
    }
}

/// Every node answered, with the same members and `latest`.
fn all_agree(views: &[Result<NodeView, String>]) -> bool {
    views.iter().all(|v| v.is_ok())
        && views.windows(2).all(|w| {
            let (a, b) = (w[0].as_ref().unwrap(), w[1].as_ref().unwrap());
            a.members == b.members && a.latest == b.latest
        })
}

/// How long until every viewer shows `target`'s members, if within
/// `timeout`.
pub fn wait_for_viewers(
    viewers: &[Viewer],
    target: &NodeView,
    timeout: Duration,
) -> Option<Duration> {
    let since = Instant::now();
    while since.elapsed() < timeout {
        let all = viewers
            .iter()
            .all(|v| v.shown.lock().unwrap().as_ref() == Some(&target.members));
        if all {
            return Some(since.elapsed());
        }
        sleep_ms(50);
    }
    None
}

#[cfg(test)]
mod test {
    use super::*;
    use edge_crdt::crdt::Element;
    use std::collections::BTreeSet;

    fn view(members: &[&str], latest: u64) -> Result<NodeView, String> {
        Ok(NodeView {
            members: members
                .iter()
                .map(|m| Element::Str((*m).into()))
                .collect::<BTreeSet<_>>(),
            latest,
            bias: "add-wins".into(),
        })
    }

    #[test]
    fn nodes_agree_on_members_and_latest() {
        assert!(all_agree(&[view(&["a"], 3), view(&["a"], 3)]));
        assert!(!all_agree(&[view(&["a"], 3), view(&["a"], 4)]));
        assert!(!all_agree(&[view(&["a"], 3), view(&["b"], 3)]));
        assert!(!all_agree(&[view(&["a"], 3), Err("down".into())]));
        assert!(!all_agree(&[Err("down".into())]));
    }
}
