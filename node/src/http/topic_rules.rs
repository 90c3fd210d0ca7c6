//! The topic-rule routes of the `iot` API: CreateTopicRule, GetTopicRule, ListTopicRules,
//! ReplaceTopicRule, DeleteTopicRule, EnableTopicRule and DisableTopicRule. Rules created
//! here are `meta` group state and start running as soon as the call answers; rules from
//! `--rules-dir` are listed and described too, but only their files change them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{authenticate, json_body, page_after, page_response, unexpected, Api, ApiResult, AwsError};
use crate::broker::message::now_ms;
use crate::registry::arn_prefix;
use crate::rules::api::{self, TopicRule, API_DEFAULT_SQL_VERSION};

/// `TopicRulePayload`, the body of CreateTopicRule and ReplaceTopicRule.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Payload {
    sql: Option<String>,
    description: Option<String>,
    actions: Option<Vec<Value>>,
    #[serde(default)]
    rule_disabled: bool,
    aws_iot_sql_version: Option<String>,
    error_action: Option<Value>,
}

fn rule_arn(region: &str, name: &str) -> String {
    format!("{}rule/{name}", arn_prefix(region))
}

/// AWS's 409 for changing a rule that a rule file defines.
fn read_only(rule: &ferrite_rules::Rule) -> AwsError {
    AwsError::new(
        409,
        "ConflictingResourceUpdateException",
        format!(
            "Rule {} is defined in the rule file {} and is read-only through the API; edit the file instead",
            rule.name, rule.origin
        ),
    )
}

fn file_rule(api: &Api, name: &str) -> Option<ferrite_rules::Rule> {
    api.broker.rules.file_rules().into_iter().find(|r| r.name == name)
}

async fn propose(api: &Api, command: api::Command) -> Result<(), AwsError> {
    match crate::meta::propose(&api.broker.meta, crate::meta::Command::TopicRule(command)).await? {
        crate::meta::Outcome::TopicRule => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}

/// CreateTopicRule (POST), GetTopicRule (GET), ReplaceTopicRule (PATCH), DeleteTopicRule
/// (DELETE).
pub(super) async fn topic_rule(
    api: web::Data<Api>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> ApiResult {
    let signer = authenticate(&api, &req, &body, "iot")?;
    let name = name.into_inner();
    let from_file = file_rule(&api, &name);
    match *req.method() {
        actix_web::http::Method::GET => {
            let rule = match (&from_file, api.broker.meta.state().topic_rules.get(&name)) {
                (Some(f), _) => file_rule_document(f),
                (None, Some(r)) => serde_json::to_value(&r).unwrap_or_default(),
                (None, None) => return Err(api::no_such_rule(&name).into()),
            };
            Ok(HttpResponse::Ok().json(json!({ "ruleArn": rule_arn(&signer.region, &name), "rule": rule })))
        }
        actix_web::http::Method::POST | actix_web::http::Method::PATCH => {
            let replace = req.method() == actix_web::http::Method::PATCH;
            if let Some(f) = &from_file {
                if !replace {
                    return Err(AwsError::new(
                        409,
                        "ResourceAlreadyExistsException",
                        format!("Rule {name} already exists (defined in the rule file {})", f.origin),
                    ));
                }
                return Err(read_only(f));
            }
            let p: Payload = json_body(&body)?;
            let (Some(sql), Some(actions)) = (p.sql, p.actions) else {
                return Err(AwsError::new(400, "InvalidRequestException", "topicRulePayload needs sql and actions"));
            };
            let rule = TopicRule {
                rule_name: name,
                sql,
                description: p.description,
                created_at: now_ms() / 1000,
                actions,
                rule_disabled: p.rule_disabled,
                aws_iot_sql_version: p.aws_iot_sql_version.unwrap_or_else(|| API_DEFAULT_SQL_VERSION.into()),
                error_action: p.error_action,
            };
            api::check(&rule)?;
            propose(&api, api::Command::Put { rule, replace }).await?;
            Ok(HttpResponse::Ok().finish())
        }
        actix_web::http::Method::DELETE => {
            if let Some(f) = &from_file {
                return Err(read_only(f));
            }
            propose(&api, api::Command::Delete { name }).await?;
            Ok(HttpResponse::Ok().finish())
        }
        _ => Err(AwsError::new(405, "MethodNotAllowedException", "Method not allowed")),
    }
}

/// EnableTopicRule and DisableTopicRule.
pub(super) async fn set_enabled(
    api: web::Data<Api>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let (name, verb) = path.into_inner();
    let enabled = match verb.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(AwsError::new(404, "ResourceNotFoundException", format!("No route /rules/{name}/{verb}"))),
    };
    if let Some(f) = file_rule(&api, &name) {
        return Err(read_only(&f));
    }
    propose(&api, api::Command::SetEnabled { name, enabled }).await?;
    Ok(HttpResponse::Ok().finish())
}

/// A rule file's rule in `TopicRule` shape: its actions where AWS has a shape for them.
fn file_rule_document(r: &ferrite_rules::Rule) -> Value {
    let mut doc = json!({
        "ruleName": r.name,
        "sql": r.sql,
        "actions": api::aws_actions(r),
        "ruleDisabled": !r.enabled,
        "awsIotSqlVersion": r.statement.version.as_str(),
    });
    if let Some(d) = &r.description {
        doc["description"] = json!(d);
    }
    doc
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    topic: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
    rule_disabled: Option<bool>,
}

/// One entry of ListTopicRules.
struct Listed {
    name: String,
    topic_pattern: Option<String>,
    created_at: Option<u64>,
    disabled: bool,
}

/// ListTopicRules: API and file rules together, in name order; `topic` keeps the rules whose
/// FROM filter matches that topic.
pub(super) async fn list_topic_rules(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
    body: web::Bytes,
) -> ApiResult {
    let signer = authenticate(&api, &req, &body, "iot")?;
    let mut all: Vec<Listed> = api
        .broker
        .rules
        .file_rules()
        .into_iter()
        .map(|r| Listed {
            topic_pattern: r.statement.topic_filter.clone(),
            name: r.name,
            created_at: None,
            disabled: !r.enabled,
        })
        .collect();
    let filters: std::collections::HashMap<String, Option<String>> =
        api.broker.rules.api_rules().into_iter().map(|r| (r.name, r.statement.topic_filter)).collect();
    for r in api.broker.meta.state().topic_rules.all() {
        if all.iter().any(|l| l.name == r.rule_name) {
            continue;
        }
        let pattern = filters.get(&r.rule_name).cloned().flatten();
        all.push(Listed {
            name: r.rule_name,
            topic_pattern: pattern,
            created_at: Some(r.created_at),
            disabled: r.rule_disabled,
        });
    }
    all.retain(|l| {
        query.rule_disabled.is_none_or(|d| d == l.disabled)
            && query.topic.as_deref().is_none_or(|t| {
                l.topic_pattern.as_deref().is_some_and(|f| f == t || ferrite_rules::topic_matches(f, t))
            })
    });
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let size = query.max_results.unwrap_or(1000).clamp(1, 10_000);
    let (page, next) = page_after(&all, |l| &l.name, query.next_token.as_deref(), size);
    let rules: Vec<Value> = page
        .iter()
        .map(|l| {
            let mut doc = json!({
                "ruleArn": rule_arn(&signer.region, &l.name), "ruleName": l.name, "ruleDisabled": l.disabled,
            });
            if let Some(p) = &l.topic_pattern {
                doc["topicPattern"] = json!(p);
            }
            if let Some(c) = l.created_at {
                doc["createdAt"] = json!(c);
            }
            doc
        })
        .collect();
    page_response(json!({ "rules": rules }), next)
}
