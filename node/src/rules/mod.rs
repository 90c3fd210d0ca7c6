//! The rule runtime: rules loaded from `--rules-dir` and rules created through the API (`api`)
//! run on every publish that their FROM filter matches, on the node that received it, with the payload parsed at most once and
//! shared by all matching rules. Outputs go to per-action queues (see `actions`); the publish
//! path never waits for an action.

pub mod actions;
pub mod api;
pub mod files;
pub mod index;
pub mod log;
pub mod reload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrite_mqtt::packet::{Properties, QoS};
use ferrite_mqtt::topic::TopicLimits;
use ferrite_rules::jit::JitModule;
use ferrite_rules::projection::Projection;
use ferrite_rules::{
    Action, ActionKind, MessageContext, MqttProperties, NoHost, Output, Param, Payload, Rule, Statement,
};
use parking_lot::{Mutex, RwLock};

use self::actions::{ActionMetrics, ActionSink, ErrorRoute, Job, JobMeta, Rendered};
use self::index::FilterIndex;
use crate::broker::message::Message;
use crate::broker::publisher::Publisher;
use crate::metrics::write_family;

/// Default bounded queue length of an action.
pub const DEFAULT_QUEUE_SIZE: usize = 1000;
/// Rules do not run on a message that this many rule republishes led to: a rule that
/// republishes to a topic it reads stops there instead of looping forever.
pub const MAX_RULE_HOPS: u8 = 8;
/// Default retries of a failing action before its error action runs.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// Counters of one rule, kept across reloads by rule name.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    /// Messages whose topic matched the rule.
    pub matched: AtomicU64,
    /// Messages that passed WHERE (an output was produced).
    pub passed: AtomicU64,
    /// Messages that WHERE filtered out.
    pub filtered: AtomicU64,
    /// Evaluations that failed (a failed lookup).
    pub errors: AtomicU64,
    /// Messages whose payload was not JSON although the rule reads attributes.
    pub parse_errors: AtomicU64,
}

struct LoadedAction {
    action: Action,
    sink: ActionSink,
}

struct LoadedRule {
    rule: Rule,
    name: Arc<str>,
    reads_attributes: bool,
    /// The payload members it reads (`None`: the whole document).
    projection: Option<Projection>,
    metrics: Arc<RuleMetrics>,
    actions: Vec<LoadedAction>,
    error_action: Option<LoadedAction>,
}

/// One immutable version of the loaded rule set; replaced whole on reload. Its native code
/// (statement `i` is rule `i`) is freed when the last message using this version is done.
struct RuleSet {
    rules: Vec<LoadedRule>,
    index: FilterIndex,
    by_name: HashMap<String, usize>,
    code: JitModule,
    /// The members any rule of the set reads (`None` when one needs the whole document): the
    /// payload of a message several rules match is parsed once with it.
    projection: Option<Projection>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            index: FilterIndex::default(),
            by_name: HashMap::new(),
            code: JitModule::compile(std::iter::empty()),
            projection: None,
        }
    }
}

/// Where the running rules come from.
#[derive(Default)]
struct Sources {
    /// From `--rules-dir`, in file order.
    files: Vec<Rule>,
    /// Created through the API, in name order.
    api: Vec<Rule>,
}

/// The rule runtime of a node.
pub struct RuleEngine {
    current: RwLock<Arc<RuleSet>>,
    /// The checked rules of each source; the running set is built from both.
    sources: Mutex<Sources>,
    rule_metrics: Mutex<HashMap<String, Arc<RuleMetrics>>>,
    action_metrics: Mutex<HashMap<String, Arc<ActionMetrics>>>,
    /// The `rule-actions` thread's runtime, where every action runs.
    runtime: tokio::runtime::Handle,
    /// What actions need from the node: where republishes go, the topic rules, the data
    /// directory of file actions.
    node: actions::NodeAccess,
    next_trace: AtomicU64,
    loops_stopped: AtomicU64,
    /// Errors in the rule files as last read (`ferrite_rules_config_errors`).
    config_errors: AtomicU64,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine").field("rules", &self.current.read().rules.len()).finish()
    }
}

fn int_param(action: &Action, name: &str) -> Option<i64> {
    match action.param(name) {
        Some(Param::Int(n)) => Some(*n),
        _ => None,
    }
}

impl RuleEngine {
    /// An engine with no rules, and the thread that will run their actions: republishes go
    /// out through `publisher` (checked against `limits`), file actions write below
    /// `data_dir`.
    pub fn start(publisher: Publisher, limits: TopicLimits, data_dir: PathBuf) -> anyhow::Result<RuleEngine> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("rule-actions".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let _ = tx.send(rt.handle().clone());
            rt.block_on(std::future::pending::<()>());
        })?;
        Ok(RuleEngine {
            current: RwLock::new(Arc::new(RuleSet::default())),
            sources: Mutex::new(Sources::default()),
            rule_metrics: Mutex::new(HashMap::new()),
            action_metrics: Mutex::new(HashMap::new()),
            runtime: rx.recv()?,
            node: Arc::new(actions::Node { publisher, limits, data_dir }),
            next_trace: AtomicU64::new(1),
            loops_stopped: AtomicU64::new(0),
            config_errors: AtomicU64::new(0),
        })
    }

    /// Records how many errors the rule files had when last read.
    pub fn set_config_errors(&self, count: usize) {
        self.config_errors.store(count as u64, Ordering::Relaxed);
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.current.read().rules.len()
    }

    /// True when no rule is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the rules from `--rules-dir` (the API-created ones stay).
    pub fn replace_file_rules(&self, rules: Vec<Rule>) {
        let mut sources = self.sources.lock();
        sources.files = rules;
        self.install(&sources);
    }

    /// Replaces the rules created through the API (the file rules stay).
    pub fn replace_api_rules(&self, rules: Vec<Rule>) {
        let mut sources = self.sources.lock();
        sources.api = rules;
        self.install(&sources);
    }

    /// The rules loaded from files, as checked (for listing them through the API).
    pub fn file_rules(&self) -> Vec<Rule> {
        self.sources.lock().files.clone()
    }

    /// The rules created through the API, as checked.
    pub fn api_rules(&self) -> Vec<Rule> {
        self.sources.lock().api.clone()
    }

    /// The running set: every file rule, then every API rule whose name no file rule has
    /// taken (the API refuses such names; a file added later wins, with a warning).
    fn install(&self, sources: &Sources) {
        let mut rules = sources.files.clone();
        for rule in &sources.api {
            if let Some(file_rule) = sources.files.iter().find(|f| f.name == rule.name) {
                tracing::warn!(rule = %rule.name, file = %file_rule.origin, "a rule file defines a rule with the name of an API-created rule; the file's rule runs");
            } else {
                rules.push(rule.clone());
            }
        }
        self.replace(rules);
    }

    /// Replaces the running rule set with `rules` at once: actions of the old set finish the
    /// jobs they hold, then stop.
    fn replace(&self, rules: Vec<Rule>) {
        let mut set = RuleSet::default();
        for rule in rules {
            let id = set.rules.len();
            let name: Arc<str> = rule.name.as_str().into();
            let metrics = self.rule_metrics.lock().entry(rule.name.clone()).or_default().clone();
            let start = |action: &Action, label: String| {
                let metrics = self.action_metrics.lock().entry(label.clone()).or_default().clone();
                let default_retries = if action.kind == ActionKind::Log { 0 } else { DEFAULT_MAX_RETRIES };
                let sink = actions::start(
                    &self.runtime,
                    label.into(),
                    metrics,
                    int_param(action, "queueSize").map_or(DEFAULT_QUEUE_SIZE, |n| n as usize),
                    int_param(action, "maxRetries").map_or(default_retries, |n| n as u32),
                    self.node.clone(),
                );
                LoadedAction { action: action.clone(), sink }
            };
            let actions = rule
                .actions
                .iter()
                .enumerate()
                .map(|(i, a)| start(a, format!("{}/{}#{i}", rule.name, a.kind.name())))
                .collect();
            let error_action =
                rule.error_action.as_ref().map(|a| start(a, format!("{}/error:{}", rule.name, a.kind.name())));
            if let Some(filter) = &rule.statement.topic_filter {
                set.index.insert(filter, id);
            }
            set.by_name.insert(rule.name.clone(), id);
            set.rules.push(LoadedRule {
                reads_attributes: rule.statement.reads_attributes(),
                projection: rule.projection(),
                rule,
                name,
                metrics,
                actions,
                error_action,
            });
        }
        set.code = JitModule::compile(set.rules.iter().map(|r| &r.rule.statement));
        set.projection =
            set.rules.iter().try_fold(Projection::default(), |all, r| r.projection.as_ref().map(|p| all.union(p)));
        let mut compiled = 0;
        for (i, r) in set.rules.iter().enumerate() {
            let how = set.code.explanation(i);
            if *how == ferrite_rules::jit::Explanation::Compiled {
                compiled += 1;
                tracing::debug!(rule = %r.name, engine = %how, "rule loaded");
            } else {
                tracing::warn!(rule = %r.name, engine = %how, "rule loaded, on the interpreter");
            }
        }
        tracing::info!(rules = set.rules.len(), compiled, "rule set compiled");
        *self.current.write() = Arc::new(set);
    }

    /// Runs every enabled rule whose FROM filter matches the message.
    pub fn on_publish(&self, msg: &Message) {
        let set = self.current.read().clone();
        if set.rules.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        set.index.matches(&msg.topic, &mut ids);
        if ids.is_empty() {
            return;
        }
        self.run(&set, &ids, &msg.topic, msg);
    }

    /// Basic Ingest: a publish to `$aws/rules/{rule}/{topic}` goes to that rule only.
    /// Returns false when no such rule is loaded (the message is dropped, as AWS does).
    pub fn ingest(&self, rule_name: &str, topic: &str, msg: &Message) -> bool {
        let set = self.current.read().clone();
        let Some(&id) = set.by_name.get(rule_name) else { return false };
        self.run(&set, &[id], topic, msg);
        true
    }

    fn run(&self, set: &RuleSet, ids: &[usize], topic: &str, msg: &Message) {
        if msg.rule_hops >= MAX_RULE_HOPS {
            self.loops_stopped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                topic,
                hops = msg.rule_hops,
                "rules not run: the message came from a chain of {MAX_RULE_HOPS} rule republishes (a rule loop?)"
            );
            return;
        }
        // One rule: parse what it reads; several: what any rule of the set reads (still once).
        let projection = match ids {
            [one] => set.rules[*one].projection.as_ref(),
            _ => set.projection.as_ref(),
        };
        let payload = Payload::with_projection(&msg.payload, projection);
        let properties = mqtt_properties(&msg.properties);
        let trace = format!("{:016x}", self.next_trace.fetch_add(1, Ordering::Relaxed));
        let ctx = MessageContext {
            client_id: msg.publisher.as_deref(),
            trace_id: Some(&trace),
            timestamp_ms: msg.created_ms as i64,
            ..MessageContext::new(topic, &payload, &properties)
        };
        for &id in ids {
            let r = &set.rules[id];
            if !r.rule.enabled {
                continue;
            }
            r.metrics.matched.fetch_add(1, Ordering::Relaxed);
            let result = set.code.evaluate(id, &ctx, &NoHost);
            if r.reads_attributes && !payload.is_json() {
                r.metrics.parse_errors.fetch_add(1, Ordering::Relaxed);
            }
            let meta = |output_is_json: bool| {
                Arc::new(JobMeta {
                    rule: r.name.clone(),
                    topic: topic.to_string(),
                    client_id: msg.publisher.as_deref().map(str::to_string),
                    trace_id: trace.clone(),
                    payload: msg.payload.clone(),
                    rule_hops: msg.rule_hops,
                    output_is_json,
                    error: r.error_action.as_ref().and_then(|e| {
                        render(&e.action, &r.rule.statement, &ctx)
                            .map(|rendered| ErrorRoute { sink: e.sink.clone(), rendered })
                            .ok()
                    }),
                })
            };
            match result {
                Ok(None) => {
                    r.metrics.filtered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(output)) => {
                    r.metrics.passed.fetch_add(1, Ordering::Relaxed);
                    log::report(|| log::RuleEvent {
                        event_type: "RuleMatch",
                        failure: None,
                        rule: r.name.to_string(),
                        topic: topic.to_string(),
                        client_id: msg.publisher.as_deref().map(str::to_string),
                        trace_id: trace.clone(),
                        action: None,
                    });
                    let output_is_json = match &output {
                        Output::Json(v) => !v.is_undefined(),
                        Output::Text(_) => true,
                        Output::Raw(_) => false,
                    };
                    let output = Arc::new(output.into_bytes(r.rule.statement.version));
                    let meta = meta(output_is_json);
                    for a in &r.actions {
                        match render(&a.action, &r.rule.statement, &ctx) {
                            Ok(rendered) => {
                                let job = Job { output: output.clone(), rendered, meta: meta.clone() };
                                if let Err(refused) = a.sink.offer(job) {
                                    let (job, why) = *refused;
                                    actions::send_to_error_action(&meta, a.action.kind, &job.rendered.resource(), &why);
                                }
                            }
                            Err(why) => {
                                a.sink.metrics.failed.fetch_add(1, Ordering::Relaxed);
                                // Its templates could not be rendered, so there is no resource to name.
                                actions::send_to_error_action(&meta, a.action.kind, "", &why);
                            }
                        }
                    }
                }
                Err(e) => {
                    r.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    log::report(|| log::RuleEvent {
                        event_type: "RuleMatch",
                        failure: Some(format!("evaluation failed: {e}")),
                        rule: r.name.to_string(),
                        topic: topic.to_string(),
                        client_id: msg.publisher.as_deref().map(str::to_string),
                        trace_id: trace.clone(),
                        action: None,
                    });
                    tracing::warn!(rule = %r.name, topic, error = %e, "rule evaluation failed");
                    let why = format!("evaluation failed: {e}");
                    actions::send_failure(&meta(false), "RuleEvaluation", &r.name, &why);
                }
            }
        }
    }

    /// Per-rule and per-action counters in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let rules = self.rule_metrics.lock();
        let mut names: Vec<&String> = rules.keys().collect();
        names.sort();
        let families: [Family<RuleMetrics>; 5] = [
            ("rule_matched_total", "Messages whose topic matched the rule", |m| m.matched.load(Ordering::Relaxed)),
            ("rule_passed_total", "Messages that passed WHERE", |m| m.passed.load(Ordering::Relaxed)),
            ("rule_filtered_total", "Messages that WHERE filtered out", |m| m.filtered.load(Ordering::Relaxed)),
            ("rule_errors_total", "Evaluations that failed", |m| m.errors.load(Ordering::Relaxed)),
            ("rule_parse_errors_total", "Non-JSON payloads for rules that read attributes", |m| {
                m.parse_errors.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, get) in families {
            let samples = names.iter().map(|n| (format!("rule=\"{}\"", escape(n)), get(&rules[*n])));
            write_family(&mut out, name, "counter", help, samples);
        }
        let actions = self.action_metrics.lock();
        let mut labels: Vec<&String> = actions.keys().collect();
        labels.sort();
        let families: [Family<ActionMetrics>; 4] = [
            ("rule_action_succeeded_total", "Action jobs that succeeded", |m| m.succeeded.load(Ordering::Relaxed)),
            ("rule_action_failed_total", "Action jobs that failed after their retries", |m| {
                m.failed.load(Ordering::Relaxed)
            }),
            ("rule_action_retried_total", "Action retries", |m| m.retried.load(Ordering::Relaxed)),
            ("rule_action_throttled_total", "Action jobs refused by a full queue", |m| {
                m.throttled.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, get) in families {
            // Kept as `rule/action`; exported as two labels so a query can sum by rule.
            let samples = labels.iter().map(|l| {
                let (rule, action) = l.split_once('/').unwrap_or((l.as_str(), ""));
                (format!("rule=\"{}\",action=\"{}\"", escape(rule), escape(action)), get(&actions[*l]))
            });
            write_family(&mut out, name, "counter", help, samples);
        }
        write_family(
            &mut out,
            "rule_loops_stopped_total",
            "counter",
            &format!("Messages not given to rules because {MAX_RULE_HOPS} rule republishes led to them"),
            [(String::new(), self.loops_stopped.load(Ordering::Relaxed))],
        );
        write_family(&mut out, "rules_loaded", "gauge", "Rules loaded", [(String::new(), self.len())]);
        write_family(
            &mut out,
            "rules_config_errors",
            "gauge",
            "Errors in the rule files as last read (0 when they loaded; otherwise the previous set, or none, runs)",
            [(String::new(), self.config_errors.load(Ordering::Relaxed))],
        );
        out
    }
}

/// A metric family: name, help text and how to read it from a counter set.
type Family<M> = (&'static str, &'static str, fn(&M) -> u64);

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mqtt_properties(p: &Properties) -> MqttProperties {
    MqttProperties {
        payload_format_utf8: p.payload_format_indicator.map(|i| i == 1),
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.as_ref().map(|b| b.to_vec()),
        user_properties: p.user_properties.clone(),
    }
}

fn template(action: &Action, name: &str, stmt: &Statement, ctx: &MessageContext<'_>) -> Result<Option<String>, String> {
    match action.param(name) {
        Some(Param::Template(t)) => t.render(stmt, ctx, &NoHost).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

fn template_map(
    action: &Action,
    name: &str,
    stmt: &Statement,
    ctx: &MessageContext<'_>,
) -> Result<Vec<(String, String)>, String> {
    match action.param(name) {
        Some(Param::Map(entries)) => entries
            .iter()
            .map(|(k, t)| t.render(stmt, ctx, &NoHost).map(|v| (k.clone(), v)).map_err(|e| e.to_string()))
            .collect(),
        _ => Ok(vec![]),
    }
}

/// Renders an action's templates for one message.
fn render(action: &Action, stmt: &Statement, ctx: &MessageContext<'_>) -> Result<Rendered, String> {
    Ok(match action.kind {
        ActionKind::Republish => {
            let topic = template(action, "topic", stmt, ctx)?.unwrap_or_default();
            let qos = match int_param(action, "qos") {
                Some(2) => QoS::ExactlyOnce,
                Some(1) => QoS::AtLeastOnce,
                _ => QoS::AtMostOnce,
            };
            let retain = matches!(action.param("retain"), Some(Param::Bool(true)));
            let properties = Properties {
                content_type: template(action, "contentType", stmt, ctx)?,
                response_topic: template(action, "responseTopic", stmt, ctx)?,
                correlation_data: template(action, "correlationData", stmt, ctx)?.map(Into::into),
                payload_format_indicator: template(action, "payloadFormatIndicator", stmt, ctx)?
                    .map(|f| u8::from(f == "UTF8_DATA")),
                message_expiry_interval: int_param(action, "messageExpiry").map(|n| n as u32),
                user_properties: template_map(action, "userProperties", stmt, ctx)?,
                ..Properties::default()
            };
            Rendered::Republish { topic, qos, retain, properties: Box::new(properties) }
        }
        ActionKind::Http => Rendered::Http {
            url: template(action, "url", stmt, ctx)?.unwrap_or_default(),
            headers: template_map(action, "headers", stmt, ctx)?,
            timeout: Duration::from_millis(int_param(action, "timeoutMs").unwrap_or(5000) as u64),
        },
        ActionKind::File => Rendered::File {
            path: PathBuf::from(template(action, "path", stmt, ctx)?.unwrap_or_default()),
            max_bytes: int_param(action, "maxBytes").unwrap_or(64 * 1024 * 1024) as u64,
            max_files: int_param(action, "maxFiles").unwrap_or(5) as u32,
        },
        ActionKind::Log => Rendered::Log {
            level: template(action, "level", stmt, ctx)?.unwrap_or_else(|| "info".into()),
            message: template(action, "message", stmt, ctx)?,
        },
    })
}
