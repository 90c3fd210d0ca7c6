//! Serves shadow requests from MQTT and HTTP: checks the per-thing rate, then proposes
//! updates and deletes to the thing's shard group and runs gets as linearizable reads on it.
//! Responses are published from the group's thread once the change is committed and applied,
//! so `accepted` never precedes durability (docs/ARCHITECTURE.md) and a thing's responses leave
//! in the order its requests took effect. A request that fails gets `rejected` and changes
//! nothing.

use std::sync::Arc;
use std::time::Instant;

use ferrite_cluster::{Group, GroupError, Member, Store, StoreError};
use parking_lot::Mutex;
use serde_json::Value;

use super::rate::{InFlight, RateLimiter};
use super::shard::{client_token, shard_of, Applied, Command, ShadowShard};
use super::topics::{Operation, Request};
use crate::broker::publisher::Publisher;
use ferrite_aws::AwsError;

/// Group ids of the shadow shards start here (the `meta` group is 0).
pub const FIRST_SHARD_GROUP: u32 = 1;

/// Shard groups that own the shadows. Fixed: a thing's shard is its name's hash modulo
/// this, and every member of a cluster must agree on it.
pub const SHADOW_SHARDS: u32 = 4;

/// What runs once a request is answered.
pub type Answer = Box<dyn FnOnce(Result<Value, AwsError>) + Send>;

/// The shadows this node serves, spread over shard groups by thing name.
#[derive(Debug)]
pub struct ShadowService {
    shards: Vec<Group<ShadowShard>>,
    store: Arc<Store>,
    /// Where responses are published.
    publisher: Publisher,
    /// Requests one thing may make per second (0: unlimited).
    per_second: u32,
    rate: Mutex<RateLimiter>,
    in_flight: Arc<Mutex<InFlight>>,
}

fn not_committed(e: GroupError) -> AwsError {
    tracing::error!(error = %e, "a shadow request was not committed");
    AwsError::internal()
}

impl ShadowService {
    /// Opens `shards` shard groups over `store` (their logs are replayed first), as `member`;
    /// responses go out through `publisher`, and a thing may make `per_second` requests a
    /// second.
    pub fn open(
        store: &Arc<Store>,
        shards: u32,
        member: &Member,
        publisher: Publisher,
        per_second: u32,
    ) -> Result<ShadowService, StoreError> {
        let shards = (0..shards.max(1))
            .map(|i| {
                let id = FIRST_SHARD_GROUP + i;
                let state = ShadowShard::for_shard(store.clone(), i, shards);
                Group::open_member(store.clone(), id, &format!("shard-{i}"), state, member)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ShadowService {
            shards,
            store: store.clone(),
            publisher,
            per_second,
            rate: Mutex::new(RateLimiter::default()),
            in_flight: Arc::default(),
        })
    }

    /// Tells `observer` of every shadow change the shards apply from now on (the fleet
    /// index), and returns every stored shadow's indexed document now: (thing, shadow name,
    /// document).
    pub fn observe(&self, observer: super::shard::ShadowObserver) -> Vec<(String, Option<String>, Value)> {
        for g in &self.shards {
            g.state().observe(observer.clone());
        }
        let rows = self.store.scan_prefix(ferrite_cluster::Table::Shadows, b"").unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading shadows for the fleet index failed");
            Vec::new()
        });
        rows.into_iter()
            .filter_map(|(k, v)| {
                let mut parts = k.splitn(2, |b| *b == 0);
                let thing = String::from_utf8(parts.next()?.to_vec()).ok()?;
                let shadow = String::from_utf8(parts.next().unwrap_or_default().to_vec()).ok()?;
                let doc = super::document::Shadow::decode(&v)?.index_doc()?;
                Some((thing, (!shadow.is_empty()).then_some(shadow), doc))
            })
            .collect()
    }

    /// The shard groups, in shard order.
    pub fn groups(&self) -> &[Group<ShadowShard>] {
        &self.shards
    }

    /// What this node knows of each shard group.
    pub fn statuses(&self) -> impl Iterator<Item = ferrite_cluster::GroupStatus> + '_ {
        self.shards.iter().map(|g| g.status())
    }

    fn shard(&self, thing: &str) -> &Group<ShadowShard> {
        &self.shards[shard_of(thing, self.shards.len() as u32) as usize]
    }

    /// Handles one request arriving on its MQTT topic from connection `client`: the responses
    /// (or `rejected`) are published.
    pub fn handle(&self, client: Option<Arc<str>>, req: Request, payload: &[u8], now_s: u64) {
        self.submit(client, req, payload, now_s, Box::new(|_| {}));
    }

    /// [`ShadowService::submit`] for async callers (the HTTP API, which has no connection):
    /// the `accepted` document, or the error for the caller to report its own way.
    pub async fn apply(&self, req: Request, payload: &[u8], now_s: u64) -> Result<Value, AwsError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            None,
            req,
            payload,
            now_s,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap_or_else(|_| Err(not_committed(GroupError::Stopped)))
    }

    /// Serves one request from MQTT (`client` is its connection) or HTTP (`None`). A thing
    /// over its rate, or a connection with the most requests in flight, gets 429. Once the
    /// request is committed (or refused), `accepted` (with `documents` and `delta` for
    /// updates) or `rejected` is published, then `answer` runs with the accepted document or
    /// the error.
    pub fn submit(&self, client: Option<Arc<str>>, req: Request, payload: &[u8], now_s: u64, answer: Answer) {
        let mut refused = !self.rate.lock().allow(&req.thing, self.per_second, Instant::now());
        let mut started = None;
        if let (false, Some(client)) = (refused, client) {
            if self.in_flight.lock().start(&client) {
                started = Some((self.in_flight.clone(), client));
            } else {
                refused = true;
            }
        }
        let publisher = self.publisher.clone();
        let token = client_token(payload);
        let query_token = token.clone();
        let respond = move |req: Request, result: Result<Applied, AwsError>| {
            if let Some((in_flight, client)) = &started {
                in_flight.lock().finish(client);
            }
            match result {
                Ok(applied) => {
                    publisher.publish_json(req.response_topic("accepted"), applied.accepted.clone());
                    if let Some(doc) = applied.documents {
                        publisher.publish_json(req.response_topic("documents"), doc);
                    }
                    if let Some(delta) = applied.delta {
                        publisher.publish_json(req.response_topic("delta"), delta);
                    }
                    answer(Ok(applied.accepted));
                }
                Err(e) => {
                    publisher.publish_json(
                        req.response_topic("rejected"),
                        super::document::rejected_document(&e, now_s, token.as_deref()),
                    );
                    answer(Err(e));
                }
            }
        };
        if refused {
            respond(req, Err(super::document::too_many_requests()));
            return;
        }
        let group = self.shard(&req.thing);
        if req.op == Operation::Get {
            group.query(move |shard| {
                let result = shard
                    .map_err(not_committed)
                    .and_then(|s| s.get(&req.thing, req.shadow.as_deref(), query_token.as_deref(), now_s))
                    .map(|accepted| Applied { accepted, documents: None, delta: None });
                respond(req, result);
            });
            return;
        }
        let command = Command {
            op: req.op,
            now_s,
            thing: req.thing.clone(),
            shadow: req.shadow.clone(),
            payload: payload.to_vec(),
        };
        group.propose(command.encode(), Box::new(move |r| respond(req, r.unwrap_or_else(|e| Err(not_committed(e))))));
    }

    /// The names of a thing's named shadows that exist, in name order.
    pub async fn named_shadows(&self, thing: &str) -> Result<Vec<String>, AwsError> {
        let owned = thing.to_string();
        self.shard(thing).read(move |s| s.named_shadows(&owned)).await.map_err(not_committed)?
    }
}
