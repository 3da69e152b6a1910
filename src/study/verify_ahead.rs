//! The f64 reference of the members `--verify` checks, computed ahead on a thread of its own
//! from the start of a GPU run, beside the integration. A cavity member's reference takes
//! about a second; computed when its block is absorbed, the last block's was left exposed
//! after the integration (on an H200, 1.3 to 1.9 s of a 6 s cavity-10k run).

use crate::config::Plan;
use crate::engine::reference_member;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};

/// The references computed ahead, received as the absorber asks for them.
#[derive(Default)]
pub(super) struct VerifyAhead {
    from_thread: Option<Receiver<(usize, Vec<f64>)>>,
    received: HashMap<usize, Vec<f64>>,
}

impl VerifyAhead {
    /// Start the thread for `members` (indices into `local.members`, in the order wanted), or
    /// nothing where none is to be verified or no thread can be had (each reference is then
    /// computed when its block is absorbed). It stops early once `stop` is set or `cancelled`.
    pub(super) fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        local: &'scope Plan,
        members: Vec<usize>,
        stop: &'scope AtomicBool,
        cancelled: impl Fn() -> bool + Send + 'scope,
    ) -> VerifyAhead {
        if members.is_empty() {
            return VerifyAhead::default();
        }
        let (tx, rx): (Sender<(usize, Vec<f64>)>, _) = std::sync::mpsc::channel();
        let thread = crate::threads::spawn_scoped(scope, "the --verify references", move || {
            for i in members {
                if stop.load(Ordering::SeqCst) || cancelled() {
                    break;
                }
                let (reference, _) = reference_member(local, &local.members[i], &local.measures);
                if tx.send((i, reference)).is_err() {
                    break;
                }
            }
        });
        match thread {
            Ok(_) => VerifyAhead { from_thread: Some(rx), received: HashMap::new() },
            Err(_) => VerifyAhead::default(),
        }
    }

    /// Member `i`'s reference values, [sample][measure] of the plan's measures, waiting for the
    /// thread where it has not reached `i` yet; None where it will not (not asked of it, or
    /// stopped): the caller computes it.
    pub(super) fn take(&mut self, i: usize) -> Option<Vec<f64>> {
        while !self.received.contains_key(&i) {
            let (j, reference) = self.from_thread.as_ref()?.recv().ok()?;
            self.received.insert(j, reference);
        }
        self.received.remove(&i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_plan, Overrides};

    const PLAN: &str = "model = \"spin-pair\"\n[params]\nwb = 1.0\nwc = 0.8\nj1 = 0.3\nj2 = 0.1\n[initial]\nrandom = \"haar\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 5\n[ensemble]\nsize = 6\nseed = 3\n";

    /// Taken in any order, each member's reference is `reference_member`'s, bit for bit; a
    /// member not asked of the thread, or one it was stopped before, is None (the caller
    /// computes it).
    #[test]
    fn references_taken_in_any_order_are_the_members_own() {
        let plan = parse_plan(PLAN, &Overrides::default()).unwrap();
        let own = |i: usize| reference_member(&plan, &plan.members[i], &plan.measures).0;
        let (running, stopped) = (AtomicBool::new(false), AtomicBool::new(true));
        std::thread::scope(|scope| {
            let mut ahead = VerifyAhead::start(scope, &plan, vec![1, 3, 4], &running, || false);
            assert_eq!(ahead.take(4), Some(own(4)));
            assert_eq!(ahead.take(1), Some(own(1)));
            assert_eq!(ahead.take(2), None, "member 2 was not asked of the thread");
            assert_eq!(ahead.take(3), Some(own(3)));
            assert_eq!(ahead.take(3), None, "taken once");
            let mut cancelled = VerifyAhead::start(scope, &plan, vec![0], &running, || true);
            assert_eq!(cancelled.take(0), None);
            let mut stopped = VerifyAhead::start(scope, &plan, vec![0], &stopped, || false);
            assert_eq!(stopped.take(0), None);
            assert_eq!(VerifyAhead::start(scope, &plan, vec![], &running, || false).take(0), None);
        });
    }
}
