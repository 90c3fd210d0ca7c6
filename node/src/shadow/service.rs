//! Serves shadow requests published on the reserved topics: loads the shadow (from RocksDB
//! the first time), applies the request to a copy, makes the result durable, and only then
//! swaps it in and publishes the responses (`accepted` after the write, as DESIGN section 4
//! requires). A request that fails gets `rejected` and changes nothing.

use std::collections::HashMap;
use std::time::Instant;

use ferrite_cluster::{Batch, Table};
use parking_lot::Mutex;
use serde_json::Value;

use super::document::{Shadow, ShadowError};
use super::rate::RateLimiter;
use super::topics::{Operation, Request};
use crate::broker::Broker;

/// The shadows this node serves.
#[derive(Debug, Default)]
pub struct ShadowService {
    shadows: Mutex<HashMap<Vec<u8>, Shadow>>,
    rate: Mutex<RateLimiter>,
}

/// `clientToken` of a get/delete request body (which may be empty).
fn client_token(payload: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    doc.get("clientToken")?.as_str().map(str::to_string)
}

impl ShadowService {
    /// Handles one request and publishes its responses through `broker`.
    pub fn handle(&self, broker: &Broker, req: &Request<'_>, payload: &[u8], now_s: u64) {
        let per_second = broker.config.shadow_requests_per_second_per_thing;
        if !self.rate.lock().allow(req.thing, per_second, Instant::now()) {
            let err = ShadowError { code: 429, message: "Too Many Requests".into() };
            let token = client_token(payload);
            broker.publish_internal(req.response_topic("rejected"), err.document(now_s, token.as_deref()));
            return;
        }
        let mut responses: Vec<(String, Value)> = Vec::new();
        let key = req.key();
        let mut shadows = self.shadows.lock();
        let current = match shadows.get(&key) {
            Some(s) => s.clone(),
            None => match broker.store.get(Table::Shadows, &key) {
                Ok(bytes) => bytes.and_then(|b| Shadow::decode(&b)).unwrap_or_default(),
                Err(e) => {
                    tracing::error!(thing = req.thing, error = %e, "reading a shadow failed");
                    let err = ShadowError { code: 500, message: "Internal service failure".into() };
                    let token = client_token(payload);
                    drop(shadows);
                    broker.publish_internal(req.response_topic("rejected"), err.document(now_s, token.as_deref()));
                    return;
                }
            },
        };
        let mut next = current.clone();
        let token = client_token(payload);
        let outcome: Result<(), ShadowError> = match req.op {
            Operation::Get => next.get(req.display_name(), token.as_deref(), now_s).map(|doc| {
                responses.push((req.response_topic("accepted"), doc));
            }),
            Operation::Delete => next.delete(req.display_name(), token.as_deref(), now_s).map(|doc| {
                responses.push((req.response_topic("accepted"), doc));
            }),
            Operation::Update => next.update(payload, now_s).map(|u| {
                responses.push((req.response_topic("accepted"), u.accepted));
                responses.push((req.response_topic("documents"), u.documents));
                if let Some(delta) = u.delta {
                    responses.push((req.response_topic("delta"), delta));
                }
            }),
        };
        let outcome = outcome.and_then(|()| {
            if next == current {
                return Ok(());
            }
            let mut batch = Batch::new();
            batch.put(Table::Shadows, key.clone(), next.encode());
            batch.set_durable();
            broker.store.write_now(batch).map_err(|e| {
                tracing::error!(thing = req.thing, error = %e, "writing a shadow failed");
                ShadowError { code: 500, message: "Internal service failure".into() }
            })
        });
        match outcome {
            Ok(()) => {
                shadows.insert(key, next);
            }
            Err(e) => {
                responses.clear();
                responses.push((req.response_topic("rejected"), e.document(now_s, token.as_deref())));
            }
        }
        drop(shadows);
        for (topic, doc) in responses {
            broker.publish_internal(topic, doc);
        }
    }
}
