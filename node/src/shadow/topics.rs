//! The reserved MQTT topics of device shadows:
//! `$aws/things/{thingName}/shadow[/name/{shadowName}]/{get|update|delete}`.

use crate::registry::is_resource_name;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `get`.
    Get,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
}

impl Operation {
    /// The topic segment.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// A shadow request addressed by topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The thing.
    pub thing: String,
    /// The named shadow, or `None` for the classic shadow.
    pub shadow: Option<String>,
    /// The operation.
    pub op: Operation,
}

/// Longest thing name AWS allows.
pub const MAX_THING_NAME: usize = 128;
/// Longest shadow name AWS allows.
pub const MAX_SHADOW_NAME: usize = 64;

/// The request a topic addresses, when it is one (responses such as `.../update/accepted`
/// are not requests).
pub fn parse(topic: &str) -> Option<Request> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, rest) = rest.split_once("/shadow/")?;
    let (shadow, op) = match rest.strip_prefix("name/") {
        Some(named) => {
            let (name, op) = named.split_once('/')?;
            (Some(name), op)
        }
        None => (None, rest),
    };
    let op = match op {
        "get" => Operation::Get,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        _ => return None,
    };
    if !is_resource_name(thing, MAX_THING_NAME) || shadow.is_some_and(|s| !is_resource_name(s, MAX_SHADOW_NAME)) {
        return None;
    }
    Some(Request { thing: thing.to_string(), shadow: shadow.map(str::to_string), op })
}

impl Request {
    /// `$aws/things/{thing}/shadow[/name/{shadow}]/{op}/{suffix}`.
    pub fn response_topic(&self, suffix: &str) -> String {
        match &self.shadow {
            Some(s) => format!("$aws/things/{}/shadow/name/{s}/{}/{suffix}", self.thing, self.op.name()),
            None => format!("$aws/things/{}/shadow/{}/{suffix}", self.thing, self.op.name()),
        }
    }

    /// The name a 404 message shows: the shadow's name, or the thing's for a classic shadow.
    pub fn display_name(&self) -> &str {
        self.shadow.as_deref().unwrap_or(&self.thing)
    }

    /// The storage key: thing, 0, shadow name (empty for the classic shadow).
    pub fn key(&self) -> Vec<u8> {
        shadow_key(&self.thing, self.shadow.as_deref())
    }
}

/// The storage key of a shadow: thing, 0, shadow name (empty for the classic shadow).
pub fn shadow_key(thing: &str, shadow: Option<&str>) -> Vec<u8> {
    let shadow = shadow.unwrap_or("");
    let mut k = Vec::with_capacity(thing.len() + 1 + shadow.len());
    k.extend_from_slice(thing.as_bytes());
    k.push(0);
    k.extend_from_slice(shadow.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_named_keys_differ() {
        assert_eq!(shadow_key("a", None), b"a\0");
        assert_eq!(shadow_key("a", Some("b")), b"a\0b");
    }

    #[test]
    fn classic_and_named_requests_parse_and_answer_on_their_topics() {
        let r = parse("$aws/things/lamp-1/shadow/update").unwrap();
        assert_eq!(r, Request { thing: "lamp-1".into(), shadow: None, op: Operation::Update });
        assert_eq!(r.response_topic("accepted"), "$aws/things/lamp-1/shadow/update/accepted");
        let r = parse("$aws/things/lamp/shadow/name/cfg/get").unwrap();
        assert_eq!(r.shadow.as_deref(), Some("cfg"));
        assert_eq!(r.response_topic("rejected"), "$aws/things/lamp/shadow/name/cfg/get/rejected");
    }

    #[test]
    fn responses_other_topics_and_bad_names_are_not_requests() {
        for t in [
            "$aws/things/lamp/shadow/update/accepted",
            "$aws/things/lamp/shadow/update/delta",
            "$aws/things/lamp/shadow/list",
            "$aws/things//shadow/get",
            "$aws/things/la mp/shadow/get",
            "$aws/things/lamp/shadow/name//get",
            "things/lamp/shadow/get",
        ] {
            assert_eq!(parse(t), None, "{t}");
        }
    }
}
