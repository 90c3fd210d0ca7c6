//! Rule outcomes for AWS IoT's v2 logs (RuleMatch, RuleExecution): the rule engine and its
//! action workers report them here, and the node (which knows the logging levels) decides
//! whether each is written. One sink per process, set once at start; without one, reporting
//! costs a single atomic load.

use std::sync::OnceLock;

/// One rule outcome.
#[derive(Debug, Clone)]
pub struct RuleEvent {
    /// RuleMatch or RuleExecution.
    pub event_type: &'static str,
    /// Why it failed, for a failure.
    pub failure: Option<String>,
    /// The rule.
    pub rule: String,
    /// The topic of the message the rule ran on.
    pub topic: String,
    /// The client that published it, if one did.
    pub client_id: Option<String>,
    /// The rule run's trace id.
    pub trace_id: String,
    /// The action and its resource (RuleExecution).
    pub action: Option<(String, String)>,
}

/// What receives rule outcomes.
pub type Sink = Box<dyn Fn(&RuleEvent) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets where rule outcomes go (once, at start).
pub fn set_sink(sink: Sink) {
    let _ = SINK.set(sink);
}

/// Reports an outcome; `event` is built only when a sink is set.
pub fn report(event: impl FnOnce() -> RuleEvent) {
    if let Some(sink) = SINK.get() {
        sink(&event());
    }
}
