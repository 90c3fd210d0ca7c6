//! The subscription index: a topic-filter trie with `+`, `#`, shared-subscription
//! groups and the `$`-topic rule.
//!
//! It is read-mostly: every publish takes a read lock on the publisher's own thread, so
//! fan-out never funnels through one actor; SUBSCRIBE and UNSUBSCRIBE take the write
//! lock briefly. The trie is generic over the subscriber handle so it can be tested
//! without sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferrite_mqtt::packet::SubOptions;
use parking_lot::RwLock;

/// One subscription as the router stores it.
#[derive(Debug, Clone)]
pub struct Subscriber<T> {
    /// The client id owning the subscription.
    pub client_id: Arc<str>,
    /// The subscriber's handle (its session).
    pub handle: T,
    /// SUBSCRIBE options of this filter.
    pub options: SubOptions,
    /// MQTT 5 subscription identifier, if the client gave one.
    pub subscription_id: Option<u32>,
}

#[derive(Debug)]
struct Group<T> {
    /// `$share/{group}/{filter}`: names the group across the trie and the cluster.
    key: Arc<str>,
    members: Vec<Subscriber<T>>,
    cursor: AtomicUsize,
}

#[derive(Debug)]
struct Level<T> {
    children: HashMap<Box<str>, Level<T>>,
    direct: HashMap<Arc<str>, Subscriber<T>>,
    groups: HashMap<Box<str>, Group<T>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level { children: HashMap::new(), direct: HashMap::new(), groups: HashMap::new() }
    }
}

impl<T> Level<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.direct.is_empty() && self.groups.is_empty()
    }
}

/// A match found for a published topic.
#[derive(Debug, Clone)]
pub struct Match<T> {
    /// The subscription that matched.
    pub subscriber: Subscriber<T>,
    /// The `$share/{group}/{filter}` it came through, if shared (one member per group
    /// gets it).
    pub shared: Option<Arc<str>>,
}

/// The subscription trie.
#[derive(Debug)]
pub struct Router<T> {
    root: RwLock<Level<T>>,
    count: AtomicUsize,
}

impl<T: Clone> Default for Router<T> {
    fn default() -> Self {
        Router { root: RwLock::new(Level::default()), count: AtomicUsize::new(0) }
    }
}

impl<T: Clone> Router<T> {
    /// Adds or replaces `client_id`'s subscription to `filter` (in `group` when shared).
    /// Returns true when the subscription did not exist before.
    pub fn subscribe(&self, filter: &str, group: Option<&str>, sub: Subscriber<T>) -> bool {
        let mut root = self.root.write();
        let mut level = &mut *root;
        for part in filter.split('/') {
            level = level.children.entry(part.into()).or_default();
        }
        let fresh = match group {
            None => level.direct.insert(sub.client_id.clone(), sub).is_none(),
            Some(g) => {
                let group = level.groups.entry(g.into()).or_insert_with(|| Group {
                    key: format!("$share/{g}/{filter}").into(),
                    members: Vec::new(),
                    cursor: AtomicUsize::new(0),
                });
                match group.members.iter_mut().find(|m| m.client_id == sub.client_id) {
                    Some(existing) => {
                        *existing = sub;
                        false
                    }
                    None => {
                        group.members.push(sub);
                        true
                    }
                }
            }
        };
        if fresh {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    /// Removes `client_id`'s subscription; returns true when it existed.
    pub fn unsubscribe(&self, filter: &str, group: Option<&str>, client_id: &str) -> bool {
        let parts: Vec<&str> = filter.split('/').collect();
        let mut root = self.root.write();
        let removed = remove(&mut root, &parts, group, client_id);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Number of subscriptions in the index.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every subscription matching `topic`. For each shared group exactly one member is
    /// chosen, round-robin, preferring members for which `online` is true.
    pub fn matches(&self, topic: &str, online: impl Fn(&T) -> bool, out: &mut Vec<Match<T>>) {
        let parts: Vec<&str> = topic.split('/').collect();
        let root = self.root.read();
        let dollar = topic.starts_with('$');
        collect(&root, &parts, 0, dollar, &online, out);
    }
}

fn remove<T>(level: &mut Level<T>, parts: &[&str], group: Option<&str>, client_id: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return match group {
            None => level.direct.remove(client_id).is_some(),
            Some(g) => {
                let Some(grp) = level.groups.get_mut(g) else { return false };
                let before = grp.members.len();
                grp.members.retain(|m| &*m.client_id != client_id);
                let removed = grp.members.len() != before;
                if grp.members.is_empty() {
                    level.groups.remove(g);
                }
                removed
            }
        };
    };
    let Some(child) = level.children.get_mut(*first) else { return false };
    let removed = remove(child, rest, group, client_id);
    if child.is_empty() {
        level.children.remove(*first);
    }
    removed
}

fn emit<T: Clone>(level: &Level<T>, online: &impl Fn(&T) -> bool, out: &mut Vec<Match<T>>) {
    out.extend(level.direct.values().map(|s| Match { subscriber: s.clone(), shared: None }));
    for group in level.groups.values() {
        let n = group.members.len();
        if n == 0 {
            continue;
        }
        let start = group.cursor.fetch_add(1, Ordering::Relaxed);
        let pick = (0..n)
            .map(|i| &group.members[(start + i) % n])
            .find(|m| online(&m.handle))
            .unwrap_or(&group.members[start % n]);
        out.push(Match { subscriber: pick.clone(), shared: Some(group.key.clone()) });
    }
}

fn collect<T: Clone>(
    level: &Level<T>,
    parts: &[&str],
    depth: usize,
    dollar: bool,
    online: &impl Fn(&T) -> bool,
    out: &mut Vec<Match<T>>,
) {
    let wildcards_allowed = !(depth == 0 && dollar);
    if wildcards_allowed {
        if let Some(hash) = level.children.get("#") {
            emit(hash, online, out);
        }
    }
    let Some((first, rest)) = parts.split_first() else {
        emit(level, online, out);
        return;
    };
    if let Some(child) = level.children.get(*first) {
        collect(child, rest, depth + 1, dollar, online, out);
    }
    if wildcards_allowed {
        if let Some(plus) = level.children.get("+") {
            collect(plus, rest, depth + 1, dollar, online, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_mqtt::topic;
    use proptest::prelude::*;

    fn sub(id: &str) -> Subscriber<u32> {
        Subscriber { client_id: id.into(), handle: 0, options: SubOptions::default(), subscription_id: None }
    }

    fn ids(r: &Router<u32>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.matches(topic, |_| true, &mut out);
        let mut v: Vec<String> = out.iter().map(|m| m.subscriber.client_id.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn hash_matches_parent_level() {
        let r = Router::default();
        r.subscribe("a/#", None, sub("x"));
        assert_eq!(ids(&r, "a"), vec!["x"]);
        assert_eq!(ids(&r, "a/b/c"), vec!["x"]);
        assert!(ids(&r, "b").is_empty());
    }

    #[test]
    fn shared_group_delivers_to_one_member_round_robin() {
        let r = Router::default();
        r.subscribe("t", Some("g"), sub("a"));
        r.subscribe("t", Some("g"), sub("b"));
        let picks: Vec<Vec<String>> = (0..4).map(|_| ids(&r, "t")).collect();
        assert!(picks.iter().all(|p| p.len() == 1));
        assert_ne!(picks[0], picks[1]);
        r.unsubscribe("t", Some("g"), "a");
        assert_eq!(ids(&r, "t"), vec!["b"]);
    }

    #[test]
    fn shared_group_prefers_online_members() {
        let r = Router::default();
        let mut offline = sub("off");
        offline.handle = 1;
        r.subscribe("t", Some("g"), offline);
        r.subscribe("t", Some("g"), sub("on"));
        for _ in 0..5 {
            let mut out = Vec::new();
            r.matches("t", |h| *h == 0, &mut out);
            assert_eq!(&*out[0].subscriber.client_id, "on");
            assert_eq!(out[0].shared.as_deref(), Some("$share/g/t"));
        }
    }

    #[test]
    fn unsubscribe_prunes_and_counts() {
        let r = Router::default();
        assert!(r.subscribe("a/b", None, sub("x")));
        assert!(!r.subscribe("a/b", None, sub("x")));
        assert_eq!(r.len(), 1);
        assert!(r.unsubscribe("a/b", None, "x"));
        assert!(!r.unsubscribe("a/b", None, "x"));
        assert!(r.is_empty());
        assert!(r.root.read().is_empty());
    }

    proptest! {
        /// The trie agrees with the plain matching function on generated filters and topics.
        #[test]
        fn trie_agrees_with_matches(
            filters in proptest::collection::vec("(\\$?[ab+]|#)(/([ab+]|#))*", 1..8),
            topic in "\\$?[ab](/[ab]){0,3}",
        ) {
            let r = Router::default();
            let limits = topic::TopicLimits::default();
            let mut expected = Vec::new();
            for (i, f) in filters.iter().enumerate() {
                if topic::validate_filter(f, &limits).is_err() { continue; }
                r.subscribe(f, None, sub(&i.to_string()));
                if topic::matches(f, &topic) { expected.push(i.to_string()); }
            }
            expected.sort();
            prop_assert_eq!(ids(&r, &topic), expected);
        }
    }
}
