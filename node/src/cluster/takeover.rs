//! Session takeover across nodes: a node claims a client id in the `owners`
//! group before answering CONNACK; the node that held the session hands it over.
//!
//! 1. The new node proposes a claim. Once committed, every member applies it; the old
//!    owner takes the session out of its tables (its live connection gets 0x8E) and keeps
//!    the export for a minute.
//! 2. For a resumed session (clean start 0) the new node asks the old owner for the export
//!    over the requests stream, quoting its claim's epoch. An older claim than the one the
//!    old owner has applied since gets nothing (the client has moved on again).
//! 3. The new node builds the session from the export, merged with its own replica of it
//!    (`broker/replica.rs`), and answers CONNACK with session present. If the old owner
//!    cannot be reached in time, the replica alone is resumed (or, with sessions not
//!    replicated, the session starts empty); the old owner keeps its copy as a replica (or
//!    drops it) when it applies the claim.
//!
//! Every copy of a replicated session has the same routes, so messages routed while the
//! session moves reach the node it moves to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_cluster::{Channel, Group, GroupError, QuicNet};
use parking_lot::Mutex;

use super::owners::{claim_command, release_command, OnClaim, Owner, Owners};
use crate::broker::handover::{Claim, SessionExport};
use crate::broker::Broker;

/// How long the new node waits for the old owner's export.
const ASK_WITHIN: Duration = Duration::from_secs(5);
/// How long an export waits to be fetched.
const KEEP_EXPORT: Duration = Duration::from_secs(60);
/// How often this node looks for client ids it owns that no longer have a session here.
const RELEASE_EVERY: Duration = Duration::from_secs(10);
/// Client ids released per look, at most.
const RELEASES_PER_LOOK: usize = 1000;

const REQUEST: u8 = 0;
const ANSWER: u8 = 1;

/// The sessions this node hands over: built before the `owners` group, whose applied
/// claims it acts on, so neither needs the other attached later.
pub struct Handover {
    node: u64,
    /// The sessions this node hands over and takes in.
    broker: Arc<Broker>,
    /// Sessions exported for a claim, kept until the claiming node asks (or for a while).
    exports: Mutex<HashMap<String, (SessionExport, Instant)>>,
}

impl Handover {
    /// The handover of node `node`'s sessions in `broker`.
    pub fn new(node: u64, broker: Arc<Broker>) -> Arc<Handover> {
        Arc::new(Handover { node, broker, exports: Mutex::new(HashMap::new()) })
    }

    /// The hook the `owners` group runs for each applied claim.
    pub fn on_claim_hook(self: &Arc<Self>) -> OnClaim {
        let me = self.clone();
        Box::new(move |client, owner| me.on_claim(client, owner))
    }

    /// Runs on every member for each applied claim: a session claimed elsewhere leaves.
    fn on_claim(&self, client: &str, owner: Owner) {
        if owner.node == self.node {
            return;
        }
        // The exports lock is held across the export, so a request racing with this claim
        // finds the session either still here or in `exports`.
        let mut exports = self.exports.lock();
        let Some(export) = self.broker.export_session(client, owner.epoch) else { return };
        exports.retain(|_, (_, at)| at.elapsed() < KEEP_EXPORT);
        exports.insert(client.to_string(), (export, Instant::now()));
    }

    /// The session to hand to the node that claimed `client`: the one exported when the
    /// claim was applied, or (the claim is not applied here yet) the live one, exported now.
    fn take(&self, client: &str, epoch: u64) -> Option<SessionExport> {
        let mut exports = self.exports.lock();
        if let Some((export, _)) = exports.remove(client) {
            return Some(export);
        }
        self.broker.export_session(client, epoch)
    }
}

/// The takeover protocol of one node.
pub struct Takeover {
    node: u64,
    net: Arc<QuicNet>,
    /// The `owners` group.
    pub owners: Group<Owners>,
    next_request: AtomicU64,
    waiting: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Option<Vec<u8>>>>>,
    handover: Arc<Handover>,
}

impl std::fmt::Debug for Takeover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Takeover").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Why a client could not be admitted on this node.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The claim did not commit (no quorum reachable from here).
    #[error("the client id could not be claimed in the cluster: {0}")]
    Group(#[from] GroupError),
}

impl Takeover {
    /// The protocol over `net`, with the node's `owners` group (opened with `handover`'s
    /// claim hook).
    pub fn new(node: u64, net: Arc<QuicNet>, owners: Group<Owners>, handover: Arc<Handover>) -> Arc<Takeover> {
        Arc::new(Takeover {
            node,
            net,
            owners,
            next_request: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            handover,
        })
    }

    /// Starts handing sessions over, and drops recovered sessions another node claimed while
    /// this one was down.
    pub fn serve(self: &Arc<Self>) {
        let broker = &self.handover.broker;
        let me = Arc::downgrade(self);
        self.net.on_channel(
            Channel::Requests,
            Arc::new(move |from, bytes| {
                if let Some(me) = me.upgrade() {
                    me.on_message(from, &bytes);
                }
            }),
        );
        self.start_releasing();
        for client in broker.session_ids() {
            if self.give_up(&client) {
                tracing::info!(client_id = %client, "a session another node took over while this one was down is now that node's");
            }
        }
    }

    /// Keeps the owners table to the client ids that have a session: every
    /// [`RELEASE_EVERY`], a client id this node owns that had no session here at the last
    /// look too, under the same claim, is released (`owners::release_command`). Two looks
    /// apart, because a claim is committed a moment before its session opens.
    fn start_releasing(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("owners-release".into()).spawn(move || {
            let mut sessionless = HashMap::new();
            loop {
                std::thread::sleep(RELEASE_EVERY);
                let Some(me) = me.upgrade() else { return };
                sessionless = me.release_sessionless(&sessionless);
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start releasing client ids; the owners table will keep every client id");
        }
    }

    /// Releases the client ids in `seen` still without a session; answers the ones without
    /// a session now, for the next look.
    fn release_sessionless(&self, seen: &HashMap<String, u64>) -> HashMap<String, u64> {
        let broker = &self.handover.broker;
        let mut now = HashMap::new();
        let mut released = 0;
        for (client, epoch) in self.owners.state().owned_by(self.node) {
            if broker.session(&client).is_some() {
                continue;
            }
            if seen.get(&client) == Some(&epoch) && released < RELEASES_PER_LOOK {
                self.owners.propose(release_command(epoch, &client), Box::new(|_| {}));
                released += 1;
            } else {
                now.insert(client, epoch);
            }
        }
        if released > 0 {
            tracing::debug!(released, "released client ids that no longer have a session");
        }
        now
    }

    /// Claims `client_id` for this node; with `resume`, fetches the session from the node
    /// that held it. Answers the claim's epoch and the session to resume, if any came.
    pub async fn claim(self: &Arc<Self>, client_id: &str, resume: bool) -> Result<Claim, ClaimError> {
        let before = self.owners.propose_wait(claim_command(self.node, client_id)).await?;
        let epoch = self.owners.state().owner(client_id).map_or(0, |o| o.epoch);
        let Some(previous) = before.filter(|o| o.node != self.node) else { return Ok(Claim { epoch, export: None }) };
        if !resume {
            return Ok(Claim { epoch, export: None });
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().insert(id, tx);
        let mut msg = vec![REQUEST];
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&epoch.to_be_bytes());
        msg.extend_from_slice(client_id.as_bytes());
        let answer = if self.net.send_channel(previous.node, Channel::Requests, msg) {
            tokio::time::timeout(ASK_WITHIN, rx).await.ok().and_then(Result::ok).flatten()
        } else {
            None
        };
        self.waiting.lock().remove(&id);
        match answer {
            Some(bytes) => Ok(Claim { epoch, export: SessionExport::decode(&bytes) }),
            None => {
                tracing::warn!(
                    client_id,
                    node = previous.node,
                    "the node that held the session did not hand it over; resuming this node's replica of it, if any"
                );
                Ok(Claim { epoch, export: None })
            }
        }
    }

    fn on_message(&self, from: u64, bytes: &[u8]) {
        let Some((&kind, rest)) = bytes.split_first() else { return };
        let Some((id, rest)) = rest.split_at_checked(8) else { return };
        let id = u64::from_be_bytes(id.try_into().unwrap_or_default());
        match kind {
            REQUEST => {
                let Some((epoch, client)) = rest.split_at_checked(8) else { return };
                let epoch = u64::from_be_bytes(epoch.try_into().unwrap_or_default());
                let Ok(client) = std::str::from_utf8(client) else { return };
                let export = self.hand_over(client, epoch);
                let mut answer = vec![ANSWER];
                answer.extend_from_slice(&id.to_be_bytes());
                if let Some(export) = export {
                    answer.push(1);
                    answer.extend_from_slice(&export.encode());
                }
                self.net.send_channel(from, Channel::Requests, answer);
            }
            ANSWER => {
                if let Some(tx) = self.waiting.lock().remove(&id) {
                    let _ = tx.send(rest.split_first().map(|(_, export)| export.to_vec()));
                }
            }
            _ => tracing::debug!(peer = from, "an unknown request kind was dropped"),
        }
    }

    /// True when the latest applied claim of `client_id` is another node's: a connection
    /// admitted here after its own claim was replaced must not stay (checked after it is
    /// attached, because the claim hook finds nothing to hand over before that).
    pub fn superseded(&self, client_id: &str) -> bool {
        self.owners.state().owner(client_id).is_some_and(|o| o.node != self.node)
    }

    /// Gives this node's session of `client_id` up to the node whose later claim replaced
    /// this node's (see [`Takeover::superseded`]): it stays here as a replica (or goes,
    /// with sessions not replicated), so only the claim's node owns it.
    /// True when this node owned a session it gave up.
    pub fn give_up(&self, client_id: &str) -> bool {
        let Some(owner) = self.owners.state().owner(client_id).filter(|o| o.node != self.node) else { return false };
        self.handover.broker.export_session(client_id, owner.epoch).is_some()
    }

    /// The session for a claim of epoch `epoch`: nothing when a later claim replaced it.
    fn hand_over(&self, client: &str, epoch: u64) -> Option<SessionExport> {
        if self.owners.state().owner(client).is_some_and(|o| o.epoch > epoch) {
            return None;
        }
        self.handover.take(client, epoch)
    }
}
