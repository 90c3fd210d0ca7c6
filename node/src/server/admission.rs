//! How many client sockets each device listener may hold, so that no listener (and no
//! flood of idle sockets on one) can take every file descriptor of the process and starve
//! the others, the HTTP API, storage and the cluster.
//!
//! The descriptors the process may open are split in two: a reserve the client listeners
//! never touch (storage files, the HTTP API, cluster and outbound sockets), and a budget
//! for client sockets. Within the budget every listener is guaranteed a share; a listener
//! may go past its share only while enough budget stays free for the other listeners to
//! reach theirs. An operator may cap any listener lower (`[limits.max_connections]`).
//! A socket past a limit is accepted and closed at once, so the kernel's backlog drains
//! and the refusal is logged, instead of piling up unaccepted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The device listeners, in the order their counts are kept.
pub const LISTENERS: [&str; 5] = ["mqtt", "ws", "mqtts", "wss", "https"];

/// What the listeners may hold together and each on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Client sockets all listeners together may hold.
    pub budget: usize,
    /// Per listener (same order as [`LISTENERS`]): the most it may hold.
    pub cap: [usize; 5],
}

impl Limits {
    /// The limits for a process that may open `descriptors` files, with optional
    /// operator caps per listener.
    pub fn for_descriptors(descriptors: u64, caps: [Option<usize>; 5]) -> Limits {
        let descriptors = usize::try_from(descriptors).unwrap_or(usize::MAX);
        let reserve = (descriptors / 10).max(128);
        let budget = descriptors.saturating_sub(reserve).max(LISTENERS.len());
        Limits { budget, cap: caps.map(|c| c.unwrap_or(usize::MAX)) }
    }

    /// What each listener can always get, whatever the others hold.
    fn guaranteed(&self, i: usize) -> usize {
        (self.budget / (2 * LISTENERS.len())).min(self.cap[i])
    }
}

/// Why a socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds its configured `[limits.max_connections]`.
    ListenerCap,
    /// Taking one more would leave too little of the node's budget for the other listeners.
    FairShare,
}

#[derive(Debug)]
struct Counts {
    used: [usize; 5],
    total: usize,
    /// Refusals per listener, for their rate-limited log line.
    refusals: [LogEvery; 5],
}

/// Counts a repeated event (a refused socket, a failed accept) and says when to log it: at
/// most every [`LOG_EVERY`], with how many happened since the last line.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEvery {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl LogEvery {
    /// Counts one more; `Some(n)` when a line is due now, `n` events since the last one.
    pub fn note(&mut self) -> Option<u64> {
        self.unlogged += 1;
        if self.logged_at.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        self.logged_at = Some(Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// The shared counts of every device listener.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    counts: Mutex<Counts>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// One admitted socket: its listener's count goes down when this is dropped.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    listener: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.used[self.listener] -= 1;
        c.total -= 1;
    }
}

/// Refusals and failed accepts are logged at most this often per listener, with the count
/// since the last line.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Admission {
    /// Shared counts under `limits`.
    pub fn new(limits: Limits, metrics: Arc<crate::metrics::Metrics>) -> Arc<Admission> {
        let counts = Counts { used: [0; 5], total: 0, refusals: [LogEvery::default(); 5] };
        Arc::new(Admission { limits, counts: Mutex::new(counts), metrics })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits one more socket on `listener` (an index into [`LISTENERS`]), or says why not
    /// (logging the refusal, at most every [`LOG_EVERY`] per listener).
    pub fn admit(self: &Arc<Self>, listener: usize) -> Result<Slot, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match self.decide(&c, listener) {
            Ok(()) => {
                c.used[listener] += 1;
                c.total += 1;
                Ok(Slot { admission: self.clone(), listener })
            }
            Err(why) => {
                self.metrics.connections_refused_at_limit_total.inc();
                if let Some(refused) = c.refusals[listener].note() {
                    let holding = c.used[listener];
                    let listener = LISTENERS[listener];
                    match why {
                        Refusal::ListenerCap => tracing::warn!(
                            listener,
                            holding,
                            refused,
                            "connections refused: the listener holds its [limits.max_connections]"
                        ),
                        Refusal::FairShare => tracing::warn!(
                            listener,
                            holding,
                            refused,
                            budget = self.limits.budget,
                            "connections refused: this listener holds its share of the node's client sockets (the rest is kept for the other listeners; raise the open-files limit)"
                        ),
                    }
                }
                Err(why)
            }
        }
    }

    fn decide(&self, c: &Counts, i: usize) -> Result<(), Refusal> {
        let l = &self.limits;
        if c.used[i] >= l.cap[i] {
            return Err(Refusal::ListenerCap);
        }
        if c.used[i] < l.guaranteed(i) {
            return Ok(());
        }
        // Past its guarantee: only from what the others' unused guarantees do not need.
        let promised: usize =
            (0..LISTENERS.len()).filter(|&j| j != i).map(|j| l.guaranteed(j).saturating_sub(c.used[j])).sum();
        if c.total + promised < l.budget {
            Ok(())
        } else {
            Err(Refusal::FairShare)
        }
    }

    /// The node's metrics (refusals and failed accepts are counted there).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Sockets `listener` holds now.
    pub fn holding(&self, listener: usize) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).used[listener]
    }
}

/// Raises the soft open-files limit to the hard one (as most servers do at start: the soft
/// default of 1024 is a relic) and returns the limit in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(descriptors: u64, caps: [Option<usize>; 5]) -> Arc<Admission> {
        Admission::new(Limits::for_descriptors(descriptors, caps), Arc::default())
    }

    #[test]
    fn one_listener_cannot_take_what_the_others_are_guaranteed() {
        let a = admission(400, [None; 5]);
        let budget = a.limits().budget;
        let guaranteed = budget / 10;
        let wss = 3;
        let mut held = Vec::new();
        while let Ok(slot) = a.admit(wss) {
            held.push(slot);
        }
        assert_eq!(held.len(), budget - 4 * guaranteed, "wss gets everything but the others' shares");
        assert_eq!(a.admit(wss).unwrap_err(), Refusal::FairShare);
        // Every other listener still gets its share.
        for other in [0, 1, 2, 4] {
            let mine: Vec<_> = (0..guaranteed).map(|_| a.admit(other).expect("guaranteed share")).collect();
            assert_eq!(mine.len(), guaranteed);
            held.extend(mine);
        }
        // A slot given back on wss can be taken again by wss.
        let i = held.iter().position(|s| s.listener == wss).expect("wss holds slots");
        held.swap_remove(i);
        assert!(a.admit(wss).is_ok(), "a freed slot is usable again");
    }

    #[test]
    fn an_idle_node_lets_one_listener_use_the_budget_minus_the_others_shares() {
        let a = admission(1_000_000, [None; 5]);
        let l = a.limits().clone();
        assert_eq!(l.budget, 900_000);
        let mut held = Vec::new();
        for _ in 0..(l.budget - 4 * (l.budget / 10)) {
            held.push(a.admit(0).expect("within the budget"));
        }
        assert!(a.admit(0).is_err());
        drop(held.pop());
        assert!(a.admit(0).is_ok(), "a freed slot is usable again");
    }

    #[test]
    fn an_operator_cap_is_enforced_first() {
        let a = admission(100_000, [None, None, None, Some(3), None]);
        let held: Vec<_> = (0..3).map(|_| a.admit(3).expect("under the cap")).collect();
        assert_eq!(a.admit(3).unwrap_err(), Refusal::ListenerCap);
        drop(held);
        assert!(a.admit(3).is_ok());
    }

    #[test]
    fn tiny_limits_still_admit_someone() {
        let a = admission(16, [None; 5]);
        assert!(a.limits().budget >= LISTENERS.len());
        assert!(a.admit(0).is_ok());
    }
}
