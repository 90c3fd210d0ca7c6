//! One device shadow (classic or named) as AWS IoT's Device Shadow service keeps it: the
//! `desired` and `reported` state, per-leaf metadata timestamps, and a version for optimistic
//! concurrency. Pure: requests and a clock in, response documents out. Storage, replication
//! and the MQTT/HTTP adapters sit outside, so a single node and a cluster run the same code.

use ferrite_aws::AwsError;
use serde_json::{json, Map, Value};

/// Largest `state` document (desired + reported, as JSON text) a shadow may hold.
pub const MAX_STATE_BYTES: usize = 8 * 1024;
/// Deepest nesting inside `desired` or `reported` (a leaf at `desired.a.b.c.d.e.f` is level 6).
pub const MAX_DEPTH: usize = 6;
/// Longest `clientToken`, in bytes.
pub const MAX_CLIENT_TOKEN_BYTES: usize = 64;

/// A rejected shadow request: AWS's error with the HTTP-style status the `/rejected`
/// document carries as `code`.
fn rejected(code: u16, message: impl Into<String>) -> AwsError {
    let error_type = match code {
        400 => "InvalidRequestException",
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        413 => "RequestEntityTooLargeException",
        429 => "ThrottlingException",
        _ => "InternalFailureException",
    };
    AwsError::new(code, error_type, message)
}

/// AWS's 429, for a thing over its rate or a connection with too many requests in flight.
pub fn too_many_requests() -> AwsError {
    rejected(429, "Too Many Requests")
}

/// The `/rejected` document of `e`: `{"code", "message", "timestamp", "clientToken"?}`.
pub fn rejected_document(e: &AwsError, now_s: u64, client_token: Option<&str>) -> Value {
    let mut doc = json!({ "code": e.status, "message": e.message, "timestamp": now_s });
    if let Some(t) = client_token {
        doc["clientToken"] = json!(t);
    }
    doc
}

/// What an accepted update produced: the documents the service publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// `/update/accepted`: the request's state with its metadata, the new version.
    pub accepted: Value,
    /// `/update/documents`: the shadow before and after.
    pub documents: Value,
    /// `/update/delta`, when the update set `desired` and desired still differs from reported.
    pub delta: Option<Value>,
}

/// One shadow. A deleted shadow keeps its version, so a later update continues from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shadow {
    state: Option<State>,
    version: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    desired: Map<String, Value>,
    reported: Map<String, Value>,
    desired_meta: Map<String, Value>,
    reported_meta: Map<String, Value>,
    timestamp: u64,
}

/// The parts of an update request, validated.
struct Request {
    desired: Option<Value>,
    reported: Option<Value>,
    version: Option<u64>,
    client_token: Option<String>,
}

fn parse_request(payload: &[u8]) -> Result<Request, AwsError> {
    let doc: Value = serde_json::from_slice(payload).map_err(|_| rejected(400, "Invalid JSON"))?;
    let Value::Object(doc) = doc else { return Err(rejected(400, "Invalid JSON")) };
    let client_token = match doc.get("clientToken") {
        None => None,
        Some(Value::String(t)) if t.len() <= MAX_CLIENT_TOKEN_BYTES => Some(t.clone()),
        Some(_) => return Err(rejected(400, "Invalid clientToken")),
    };
    let version = match doc.get("version") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| rejected(400, "Invalid version"))?),
    };
    let state = doc.get("state").ok_or_else(|| rejected(400, "Missing required node: state"))?;
    let (desired, reported) = match state {
        // `"state": null` clears both sections.
        Value::Null => (Some(Value::Null), Some(Value::Null)),
        Value::Object(s) => {
            if s.keys().any(|k| k != "desired" && k != "reported") {
                return Err(rejected(400, "State contains an invalid node"));
            }
            let section = |name: &str, message: &str| match s.get(name) {
                None => Ok(None),
                Some(v @ (Value::Object(_) | Value::Null)) => Ok(Some(v.clone())),
                Some(_) => Err(rejected(400, message)),
            };
            (
                section("desired", "Desired node must be an object")?,
                section("reported", "Reported node must be an object")?,
            )
        }
        _ => return Err(rejected(400, "State node must be an object")),
    };
    for section in [&desired, &reported].into_iter().flatten() {
        if depth(section) > MAX_DEPTH {
            return Err(rejected(400, format!("JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")));
        }
    }
    Ok(Request { desired, reported, version, client_token })
}

/// Levels of nesting below a section, objects and arrays alike (`{"a": 1}` is 1,
/// `{"a": [1]}` is 2), so that whatever is accepted is also within what storage reads back.
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The metadata of a value written at `now`: the same shape, with `{"timestamp": now}` at
/// every leaf (array elements included).
fn metadata_of(v: &Value, now: u64) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), metadata_of(v, now))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| metadata_of(v, now)).collect()),
        _ => json!({ "timestamp": now }),
    }
}

/// Merges an update section into a stored one: `null` removes a key, objects merge key by
/// key, anything else replaces. Metadata follows the same edits.
fn merge(target: &mut Map<String, Value>, meta: &mut Map<String, Value>, update: &Map<String, Value>, now: u64) {
    for (key, value) in update {
        match value {
            Value::Null => {
                target.remove(key);
                meta.remove(key);
            }
            Value::Object(inner) => {
                if !matches!(target.get(key), Some(Value::Object(_))) {
                    target.insert(key.clone(), Value::Object(Map::new()));
                    meta.insert(key.clone(), Value::Object(Map::new()));
                }
                if !matches!(meta.get(key), Some(Value::Object(_))) {
                    meta.insert(key.clone(), Value::Object(Map::new()));
                }
                if let (Some(Value::Object(t)), Some(Value::Object(m))) = (target.get_mut(key), meta.get_mut(key)) {
                    merge(t, m, inner, now);
                    if t.is_empty() {
                        target.remove(key);
                        meta.remove(key);
                    }
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
                meta.insert(key.clone(), metadata_of(other, now));
            }
        }
    }
}

/// What of `desired` differs from `reported` (with the matching desired metadata).
fn delta(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    meta: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut state = Map::new();
    let mut metadata = Map::new();
    for (key, want) in desired {
        let m = meta.get(key).cloned().unwrap_or(Value::Null);
        match (want, reported.get(key)) {
            (Value::Object(w), Some(Value::Object(r))) => {
                let inner_meta = match &m {
                    Value::Object(o) => o.clone(),
                    _ => Map::new(),
                };
                let (s, md) = delta(w, r, &inner_meta);
                if !s.is_empty() {
                    state.insert(key.clone(), Value::Object(s));
                    metadata.insert(key.clone(), Value::Object(md));
                }
            }
            (w, Some(r)) if w == r => {}
            (w, _) => {
                state.insert(key.clone(), w.clone());
                metadata.insert(key.clone(), m);
            }
        }
    }
    (state, metadata)
}

fn with_token(mut doc: Value, client_token: Option<&str>) -> Value {
    if let Some(t) = client_token {
        doc["clientToken"] = json!(t);
    }
    doc
}

fn section_pair(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if !desired.is_empty() {
        out.insert("desired".into(), Value::Object(desired.clone()));
    }
    if !reported.is_empty() {
        out.insert("reported".into(), Value::Object(reported.clone()));
    }
    out
}

impl Shadow {
    /// The shadow as stored bytes: its version and document (null once deleted).
    pub fn encode(&self) -> Vec<u8> {
        let state = self.state.as_ref().map(|s| {
            json!({
                "desired": s.desired, "reported": s.reported,
                "desired_meta": s.desired_meta, "reported_meta": s.reported_meta,
                "timestamp": s.timestamp,
            })
        });
        serde_json::to_vec(&json!({ "version": self.version, "state": state })).unwrap_or_default()
    }

    /// A shadow from [`Shadow::encode`]'s bytes; `None` when they are not such a record.
    pub fn decode(bytes: &[u8]) -> Option<Shadow> {
        let doc: Value = serde_json::from_slice(bytes).ok()?;
        let version = doc.get("version")?.as_u64()?;
        let state = match doc.get("state")? {
            Value::Null => None,
            s => {
                let map = |k: &str| s.get(k).and_then(Value::as_object).cloned();
                Some(State {
                    desired: map("desired")?,
                    reported: map("reported")?,
                    desired_meta: map("desired_meta")?,
                    reported_meta: map("reported_meta")?,
                    timestamp: s.get("timestamp")?.as_u64()?,
                })
            }
        };
        Some(Shadow { state, version })
    }

    /// The current version (0 for a shadow never written).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Does the shadow exist (written and not deleted since).
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    /// What the fleet index holds of this shadow (`shadow.reported`, `shadow.desired`,
    /// `shadow.version`, `shadow.hasDelta`), or `None` once deleted.
    pub fn index_doc(&self) -> Option<Value> {
        let s = self.state.as_ref()?;
        let has_delta = s.desired.iter().any(|(k, v)| s.reported.get(k) != Some(v));
        Some(json!({
            "reported": s.reported,
            "desired": s.desired,
            "version": self.version,
            "hasDelta": has_delta,
        }))
    }

    /// The document as stored: `{"state": {desired, reported}, "metadata": {...}, "version",
    /// "timestamp"}`, for `/update/documents` and persistence.
    fn stored_document(&self) -> Value {
        match &self.state {
            None => Value::Null,
            Some(s) => json!({
                "state": Value::Object(section_pair(&s.desired, &s.reported)),
                "metadata": Value::Object(section_pair(&s.desired_meta, &s.reported_meta)),
                "version": self.version,
                "timestamp": s.timestamp,
            }),
        }
    }

    /// `update`: validates `payload`, applies it, and returns the documents to publish.
    pub fn update(&mut self, payload: &[u8], now_s: u64) -> Result<Updated, AwsError> {
        self.update_with(payload, now_s, true)
    }

    /// [`Shadow::update`], building the answer documents only when `respond`: a member
    /// applying an update someone else proposed changes the state the same way and skips
    /// the JSON nobody will read.
    pub fn update_with(&mut self, payload: &[u8], now_s: u64, respond: bool) -> Result<Updated, AwsError> {
        let req = parse_request(payload)?;
        if let Some(v) = req.version {
            if v != self.version {
                return Err(rejected(409, "Version conflict"));
            }
        }
        let previous = if respond { self.stored_document() } else { Value::Null };
        let mut next = self.state.clone().unwrap_or_default();
        let mut accepted_state = Map::new();
        let mut accepted_meta = Map::new();
        for (name, section) in [("desired", &req.desired), ("reported", &req.reported)] {
            let Some(section) = section else { continue };
            let (target, meta) = if name == "desired" {
                (&mut next.desired, &mut next.desired_meta)
            } else {
                (&mut next.reported, &mut next.reported_meta)
            };
            match section {
                Value::Null => {
                    target.clear();
                    meta.clear();
                }
                Value::Object(o) => merge(target, meta, o, now_s),
                _ => {}
            }
            if respond {
                accepted_state.insert(name.into(), section.clone());
                accepted_meta.insert(name.into(), metadata_of(section, now_s));
            }
        }
        let size = serde_json::to_vec(&section_pair(&next.desired, &next.reported)).map_or(0, |b| b.len());
        if size > MAX_STATE_BYTES {
            return Err(rejected(413, "The payload exceeds the maximum size allowed"));
        }
        next.timestamp = now_s;
        self.version += 1;
        self.state = Some(next);
        if !respond {
            return Ok(Updated { accepted: Value::Null, documents: Value::Null, delta: None });
        }
        let token = req.client_token.as_deref();
        let accepted = with_token(
            json!({
                "state": Value::Object(accepted_state),
                "metadata": Value::Object(accepted_meta),
                "version": self.version,
                "timestamp": now_s,
            }),
            token,
        );
        let documents =
            with_token(json!({ "previous": previous, "current": self.stored_document(), "timestamp": now_s }), token);
        let delta = match (&req.desired, &self.state) {
            (Some(_), Some(s)) => {
                let (state, metadata) = delta(&s.desired, &s.reported, &s.desired_meta);
                (!state.is_empty()).then(|| {
                    with_token(
                        json!({
                            "version": self.version,
                            "timestamp": now_s,
                            "state": Value::Object(state),
                            "metadata": Value::Object(metadata),
                        }),
                        token,
                    )
                })
            }
            _ => None,
        };
        Ok(Updated { accepted, documents, delta })
    }

    /// `get`: the whole shadow with its delta, or 404 when it does not exist. `name` is the
    /// shadow's name as the error message shows it (the thing name for a classic shadow).
    pub fn get(&self, name: &str, client_token: Option<&str>, now_s: u64) -> Result<Value, AwsError> {
        let s = self.state.as_ref().ok_or_else(|| not_found(name))?;
        let mut state = section_pair(&s.desired, &s.reported);
        let (d, _) = delta(&s.desired, &s.reported, &s.desired_meta);
        if !d.is_empty() {
            state.insert("delta".into(), Value::Object(d));
        }
        Ok(with_token(
            json!({
                "state": Value::Object(state),
                "metadata": Value::Object(section_pair(&s.desired_meta, &s.reported_meta)),
                "version": self.version,
                "timestamp": now_s,
            }),
            client_token,
        ))
    }

    /// `delete`: removes the document (the version is kept, so a later update continues
    /// from it), or 404 when it does not exist.
    pub fn delete(&mut self, name: &str, client_token: Option<&str>, now_s: u64) -> Result<Value, AwsError> {
        if self.state.take().is_none() {
            return Err(not_found(name));
        }
        Ok(with_token(json!({ "version": self.version, "timestamp": now_s }), client_token))
    }
}

fn not_found(name: &str) -> AwsError {
    rejected(404, format!("No shadow exists with name: '{name}'"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_update_without_answers_changes_the_shadow_exactly_as_one_with_them() {
        let payloads: [&[u8]; 6] = [
            br#"{"state":{"desired":{"a":1,"b":{"c":2}}},"clientToken":"t1"}"#,
            br#"{"state":{"reported":{"a":1,"b":{"c":3}}}}"#,
            br#"{"state":{"desired":{"b":null}},"version":2}"#,
            br#"{"state":{"desired":{"x":true}},"version":1}"#,
            br#"{"state":{"reported":null}}"#,
            br#"{"state":"not an object"}"#,
        ];
        let (mut answered, mut quiet) = (Shadow::default(), Shadow::default());
        for (i, p) in payloads.iter().enumerate() {
            let a = answered.update(p, 100 + i as u64).map(|u| u.accepted);
            let q = quiet.update_with(p, 100 + i as u64, false).map(|u| u.accepted);
            assert_eq!(a.is_ok(), q.is_ok(), "payload {i}");
            assert_eq!(answered, quiet, "payload {i}");
        }
    }

    use super::*;

    fn update(s: &mut Shadow, doc: Value, now: u64) -> Result<Updated, AwsError> {
        s.update(doc.to_string().as_bytes(), now)
    }

    #[test]
    fn first_update_creates_version_1_with_leaf_metadata_and_echoes_the_token() {
        let mut s = Shadow::default();
        let u =
            update(&mut s, json!({"state": {"reported": {"temp": 21, "led": {"on": true}}}, "clientToken": "t1"}), 100)
                .unwrap();
        assert_eq!(
            u.accepted,
            json!({"state": {"reported": {"temp": 21, "led": {"on": true}}},
                   "metadata": {"reported": {"temp": {"timestamp": 100}, "led": {"on": {"timestamp": 100}}}},
                   "version": 1, "timestamp": 100, "clientToken": "t1"})
        );
        assert_eq!(u.documents["previous"], Value::Null);
        assert_eq!(u.documents["current"]["version"], json!(1));
        assert!(u.delta.is_none(), "no desired, no delta");
    }

    #[test]
    fn desired_that_differs_from_reported_publishes_only_the_difference_as_delta() {
        let mut s = Shadow::default();
        update(&mut s, json!({"state": {"reported": {"temp": 21, "mode": "eco"}}}), 100).unwrap();
        let u = update(&mut s, json!({"state": {"desired": {"temp": 25, "mode": "eco"}}}), 200).unwrap();
        assert_eq!(
            u.delta.unwrap(),
            json!({"version": 2, "timestamp": 200, "state": {"temp": 25}, "metadata": {"temp": {"timestamp": 200}}})
        );
        let got = s.get("lamp", Some("g"), 300).unwrap();
        assert_eq!(got["state"]["delta"], json!({"temp": 25}));
        assert_eq!(got["clientToken"], json!("g"));
    }

    #[test]
    fn null_removes_a_key_and_its_metadata() {
        let mut s = Shadow::default();
        update(&mut s, json!({"state": {"reported": {"a": 1, "b": {"c": 2}}}}), 1).unwrap();
        update(&mut s, json!({"state": {"reported": {"a": null, "b": {"c": null}}}}), 2).unwrap();
        let got = s.get("x", None, 3).unwrap();
        assert_eq!(got["state"], json!({}));
        assert_eq!(got["metadata"], json!({}));
    }

    #[test]
    fn a_stale_version_is_rejected_with_409_and_changes_nothing() {
        let mut s = Shadow::default();
        update(&mut s, json!({"state": {"reported": {"a": 1}}}), 1).unwrap();
        let before = s.clone();
        let e = update(&mut s, json!({"state": {"reported": {"a": 2}}, "version": 0}), 2).unwrap_err();
        assert_eq!(e, rejected(409, "Version conflict"));
        assert_eq!(s, before);
        assert!(update(&mut s, json!({"state": {"reported": {"a": 2}}, "version": 1}), 3).is_ok());
    }

    #[test]
    fn malformed_requests_get_aws_messages() {
        let mut s = Shadow::default();
        let err = |s: &mut Shadow, body: &str| s.update(body.as_bytes(), 1).unwrap_err();
        assert_eq!(err(&mut s, "not json").message, "Invalid JSON");
        assert_eq!(err(&mut s, "{}").message, "Missing required node: state");
        assert_eq!(err(&mut s, r#"{"state": 1}"#).message, "State node must be an object");
        assert_eq!(err(&mut s, r#"{"state": {"desired": 1}}"#).message, "Desired node must be an object");
        assert_eq!(err(&mut s, r#"{"state": {"reported": []}}"#).message, "Reported node must be an object");
        assert_eq!(err(&mut s, r#"{"state": {"delta": {}}}"#).message, "State contains an invalid node");
        assert_eq!(err(&mut s, r#"{"state": {}, "version": -1}"#).message, "Invalid version");
        let long = "x".repeat(65);
        assert_eq!(
            err(&mut s, &format!(r#"{{"state": {{}}, "clientToken": "{long}"}}"#)).message,
            "Invalid clientToken"
        );
        let deep = r#"{"state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}"#;
        assert_eq!(err(&mut s, deep).message, "JSON contains too many levels of nesting; maximum is 6");
        let ok = r#"{"state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}"#;
        assert!(s.update(ok.as_bytes(), 1).is_ok());
        // Arrays are levels too, as in AWS IoT.
        let deep_arrays = r#"{"state": {"desired": {"a": [[[[[[1]]]]]]}}}"#;
        assert_eq!(err(&mut s, deep_arrays).message, "JSON contains too many levels of nesting; maximum is 6");
        let ok_arrays = r#"{"state": {"desired": {"a": [[[[[1]]]]]}}}"#;
        assert!(s.update(ok_arrays.as_bytes(), 2).is_ok());
    }

    #[test]
    fn documents_over_8_kb_are_rejected_with_413() {
        let mut s = Shadow::default();
        let big = "x".repeat(MAX_STATE_BYTES);
        let e = update(&mut s, json!({"state": {"reported": {"blob": big}}}), 1).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(e.message, "The payload exceeds the maximum size allowed");
        assert!(!s.exists());
    }

    #[test]
    fn delete_keeps_the_version_and_get_after_delete_is_404() {
        let mut s = Shadow::default();
        update(&mut s, json!({"state": {"reported": {"a": 1}}}), 1).unwrap();
        assert_eq!(s.delete("lamp", Some("d"), 2).unwrap(), json!({"version": 1, "timestamp": 2, "clientToken": "d"}));
        let e = s.get("lamp", None, 3).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (404, "No shadow exists with name: 'lamp'"));
        assert_eq!(s.delete("lamp", None, 3).unwrap_err().status, 404);
        let u = update(&mut s, json!({"state": {"reported": {"a": 1}}}), 4).unwrap();
        assert_eq!(u.accepted["version"], json!(2));
    }

    #[test]
    fn encoded_shadows_decode_to_the_same_shadow() {
        let mut s = Shadow::default();
        update(&mut s, json!({"state": {"reported": {"a": [1, {"b": 2}]}, "desired": {"c": "x"}}}), 5).unwrap();
        assert_eq!(Shadow::decode(&s.encode()), Some(s.clone()));
        s.delete("t", None, 6).unwrap();
        assert_eq!(Shadow::decode(&s.encode()), Some(s));
        assert_eq!(Shadow::decode(b"garbage"), None);
    }

    #[test]
    fn rejected_documents_carry_code_message_timestamp_and_token() {
        let e = rejected(409, "Version conflict");
        assert_eq!(
            rejected_document(&e, 7, Some("t")),
            json!({"code": 409, "message": "Version conflict", "timestamp": 7, "clientToken": "t"})
        );
    }

    /// The key structure of a state section and of its metadata must match exactly.
    fn same_shape(state: &Value, meta: &Value) -> bool {
        match (state, meta) {
            (Value::Object(s), Value::Object(m)) => {
                s.len() == m.len() && s.iter().all(|(k, v)| m.get(k).is_some_and(|mv| same_shape(v, mv)))
            }
            (Value::Array(s), Value::Array(m)) => s.len() == m.len() && s.iter().zip(m).all(|(a, b)| same_shape(a, b)),
            (_, Value::Object(m)) => m.contains_key("timestamp"),
            _ => false,
        }
    }

    /// A reference model: merges as the Device Shadow documentation describes, without
    /// metadata.
    fn model_merge(target: &mut Map<String, Value>, update: &Map<String, Value>) {
        for (k, v) in update {
            match v {
                Value::Null => {
                    target.remove(k);
                }
                Value::Object(inner) => {
                    let mut t = match target.remove(k) {
                        Some(Value::Object(o)) => o,
                        _ => Map::new(),
                    };
                    model_merge(&mut t, inner);
                    if !t.is_empty() {
                        target.insert(k.clone(), Value::Object(t));
                    }
                }
                other => {
                    target.insert(k.clone(), other.clone());
                }
            }
        }
    }

    /// The reference delta: desired members whose reported counterpart is missing or
    /// different, objects compared member by member.
    fn model_delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
        desired
            .iter()
            .filter_map(|(k, want)| match (want, reported.get(k)) {
                (Value::Object(w), Some(Value::Object(r))) => {
                    let inner = model_delta(w, r);
                    (!inner.is_empty()).then(|| (k.clone(), Value::Object(inner)))
                }
                (w, Some(r)) if w == r => None,
                (w, _) => Some((k.clone(), w.clone())),
            })
            .collect()
    }

    fn leaf() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![(0i64..3).prop_map(|n| json!(n)), Just(json!("on")), Just(Value::Null), Just(json!([1, 2])),]
    }

    fn section() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let value = leaf().prop_recursive(2, 8, 3, |inner| {
            prop::collection::btree_map(prop_oneof![Just("x"), Just("y")], inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
        });
        prop::collection::btree_map(prop_oneof![Just("a"), Just("b"), Just("c")], value, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    proptest::proptest! {
        #[test]
        fn updates_follow_the_merge_model_and_versions_count_accepted_updates(
            steps in proptest::collection::vec(
                (proptest::option::of(section()), proptest::option::of(section()), proptest::option::of(0u64..6)),
                1..12,
            )
        ) {
            let mut s = Shadow::default();
            let (mut desired, mut reported) = (Map::new(), Map::new());
            for (i, (d, r, version)) in steps.into_iter().enumerate() {
                let mut state = Map::new();
                if let Some(d) = &d { state.insert("desired".into(), d.clone()); }
                if let Some(r) = &r { state.insert("reported".into(), r.clone()); }
                let mut req = json!({ "state": Value::Object(state) });
                if let Some(v) = version { req["version"] = json!(v); }
                let before = s.clone();
                match update(&mut s, req, i as u64) {
                    Ok(u) => {
                        proptest::prop_assert!(version.is_none_or(|v| v == before.version()));
                        proptest::prop_assert_eq!(s.version(), before.version() + 1);
                        proptest::prop_assert_eq!(&u.accepted["version"], &json!(s.version()));
                        if let Some(Value::Object(d)) = &d { model_merge(&mut desired, d); }
                        if let Some(Value::Object(r)) = &r { model_merge(&mut reported, r); }
                        let got = s.get("t", None, i as u64).unwrap();
                        let want_state = Value::Object(section_pair(&desired, &reported));
                        let mut got_state = got["state"].clone();
                        if let Value::Object(o) = &mut got_state { o.remove("delta"); }
                        proptest::prop_assert_eq!(&got_state, &want_state);
                        proptest::prop_assert!(same_shape(&want_state, &got["metadata"]), "metadata {}", got["metadata"]);
                        let want_delta = model_delta(&desired, &reported);
                        proptest::prop_assert_eq!(
                            got["state"].get("delta").cloned().unwrap_or(json!({})),
                            Value::Object(want_delta.clone())
                        );
                        proptest::prop_assert_eq!(u.delta.is_some(), d.is_some() && !want_delta.is_empty());
                    }
                    Err(e) => {
                        proptest::prop_assert_eq!(e.status, 409);
                        proptest::prop_assert!(version.is_some_and(|v| v != before.version()));
                        proptest::prop_assert_eq!(&s, &before);
                    }
                }
            }
        }
    }
}
