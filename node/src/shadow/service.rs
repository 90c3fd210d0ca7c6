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
    /// Handles one request arriving on its MQTT topic: the responses (or `rejected`) are
    /// published through `broker`.
    pub fn handle(&self, broker: &Broker, req: &Request<'_>, payload: &[u8], now_s: u64) {
        if let Err(e) = self.apply(broker, req, payload, now_s) {
            let token = client_token(payload);
            broker.publish_internal(req.response_topic("rejected"), e.document(now_s, token.as_deref()));
        }
    }

    /// Applies one request, from MQTT or HTTP: on success the `accepted` document is published
    /// (with `documents` and `delta` for updates) and returned; on failure nothing changes and
    /// the error is returned for the caller to report its own way.
    pub fn apply(&self, broker: &Broker, req: &Request<'_>, payload: &[u8], now_s: u64) -> Result<Value, ShadowError> {
        let per_second = broker.config.shadow_requests_per_second_per_thing;
        if !self.rate.lock().allow(req.thing, per_second, Instant::now()) {
            return Err(ShadowError { code: 429, message: "Too Many Requests".into() });
        }
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(thing = req.thing, error = %e, "{what} a shadow failed");
            ShadowError { code: 500, message: "Internal service failure".into() }
        };
        let key = req.key();
        let mut shadows = self.shadows.lock();
        let current = match shadows.get(&key) {
            Some(s) => s.clone(),
            None => broker
                .store
                .get(Table::Shadows, &key)
                .map_err(|e| internal("reading", &e))?
                .and_then(|b| Shadow::decode(&b))
                .unwrap_or_default(),
        };
        let mut next = current.clone();
        let token = client_token(payload);
        let mut responses: Vec<(String, Value)> = Vec::new();
        let accepted = match req.op {
            Operation::Get => next.get(req.display_name(), token.as_deref(), now_s)?,
            Operation::Delete => next.delete(req.display_name(), token.as_deref(), now_s)?,
            Operation::Update => {
                let u = next.update(payload, now_s)?;
                responses.push((req.response_topic("documents"), u.documents));
                if let Some(delta) = u.delta {
                    responses.push((req.response_topic("delta"), delta));
                }
                u.accepted
            }
        };
        if next != current {
            let mut batch = Batch::new();
            batch.put(Table::Shadows, key.clone(), next.encode());
            batch.set_durable();
            broker.store.write_now(batch).map_err(|e| internal("writing", &e))?;
            shadows.insert(key, next);
        } else {
            shadows.entry(key).or_insert(next);
        }
        drop(shadows);
        broker.publish_internal(req.response_topic("accepted"), accepted.clone());
        for (topic, doc) in responses {
            broker.publish_internal(topic, doc);
        }
        Ok(accepted)
    }

    /// The names of a thing's named shadows that exist, in name order.
    pub fn named_shadows(&self, broker: &Broker, thing: &str) -> Result<Vec<String>, ShadowError> {
        let mut prefix = thing.as_bytes().to_vec();
        prefix.push(0);
        let rows = broker.store.scan_prefix(Table::Shadows, &prefix).map_err(|e| {
            tracing::error!(thing, error = %e, "listing shadows failed");
            ShadowError { code: 500, message: "Internal service failure".into() }
        })?;
        let mut names: Vec<String> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let name = String::from_utf8(k[prefix.len()..].to_vec()).ok()?;
                let exists = Shadow::decode(&v).is_some_and(|s| s.exists());
                (!name.is_empty() && exists).then_some(name)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}
