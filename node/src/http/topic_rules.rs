//! The topic-rule routes of the `iot` API: CreateTopicRule, GetTopicRule, ListTopicRules,
//! ReplaceTopicRule, DeleteTopicRule, EnableTopicRule and DisableTopicRule. Rules created
//! here are `meta` group state and start running as soon as the call answers; rules from
//! `--rules-dir` are listed and described too, but only their files change them.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{page_after, page_response, TokenQuery};
use super::{proposals, Api};
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
    api.services.rules.file_rules().into_iter().find(|r| r.name == name)
}

/// GetTopicRule: API and file rules alike.
pub async fn get_topic_rule(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let rule = match (file_rule(&api, &name), api.services.meta.state().topic_rules.get(&name)) {
        (Some(f), _) => file_rule_document(&f),
        (None, Some(r)) => serde_json::to_value(&r).unwrap_or_default(),
        (None, None) => return Err(api::no_such_rule(&name)),
    };
    Ok(HttpResponse::Ok().json(json!({ "ruleArn": rule_arn(call.region(), &name), "rule": rule })))
}

/// Creates (or, with `replace`, replaces) an API rule from the `TopicRulePayload` body.
async fn put_topic_rule(api: &Api, call: &Call, name: String, replace: bool) -> ApiResult {
    if let Some(f) = file_rule(api, &name) {
        if replace {
            return Err(read_only(&f));
        }
        return Err(AwsError::new(
            409,
            "ResourceAlreadyExistsException",
            format!("Rule {name} already exists (defined in the rule file {})", f.origin),
        ));
    }
    let p: Payload = call.json()?;
    let (Some(sql), Some(actions)) = (p.sql, p.actions) else {
        return Err(AwsError::invalid_request("topicRulePayload needs sql and actions"));
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
    proposals::topic_rule(api, api::Command::Put { rule, replace }).await?;
    Ok(HttpResponse::Ok().finish())
}

/// CreateTopicRule.
/// Tags come in the `x-amz-tagging` header (`k=v&k2=v2`).
pub async fn create_topic_rule(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    let tagging = call.req.headers().get("x-amz-tagging").and_then(|v| v.to_str().ok()).unwrap_or("");
    let tags = super::tags::tagging_header(tagging);
    crate::tags::check(&tags)?;
    let name = name.into_inner();
    let answer = put_topic_rule(&api, &call, name.clone(), false).await?;
    super::tags::tag_created(&api, &rule_arn(call.region(), &name), tags).await?;
    Ok(answer)
}

/// ReplaceTopicRule.
pub async fn replace_topic_rule(api: web::Data<Api>, call: Call, name: web::Path<String>) -> ApiResult {
    put_topic_rule(&api, &call, name.into_inner(), true).await
}

/// DeleteTopicRule (API rules only: a file's rules change with the file).
pub async fn delete_topic_rule(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    if let Some(f) = file_rule(&api, &name) {
        return Err(read_only(&f));
    }
    proposals::topic_rule(&api, api::Command::Delete { name: name.into_inner() }).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Enables or disables an API rule.
async fn set_enabled(api: &Api, name: String, enabled: bool) -> ApiResult {
    if let Some(f) = file_rule(api, &name) {
        return Err(read_only(&f));
    }
    proposals::topic_rule(api, api::Command::SetEnabled { name, enabled }).await?;
    Ok(HttpResponse::Ok().finish())
}

/// EnableTopicRule.
pub async fn enable_topic_rule(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    set_enabled(&api, name.into_inner(), true).await
}

/// DisableTopicRule.
pub async fn disable_topic_rule(api: web::Data<Api>, _call: Call, name: web::Path<String>) -> ApiResult {
    set_enabled(&api, name.into_inner(), false).await
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

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListFilter {
    topic: Option<String>,
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
pub async fn list_topic_rules(api: web::Data<Api>, call: Call) -> ApiResult {
    let (page, query): (TokenQuery, ListFilter) = (call.query()?, call.query()?);
    let mut all: Vec<Listed> = api
        .services
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
        api.services.rules.api_rules().into_iter().map(|r| (r.name, r.statement.topic_filter)).collect();
    for r in api.services.meta.state().topic_rules.all() {
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
    let (page, next) = page_after(&all, |l| &l.name, page.next_token.as_deref(), page.size(1000, 10_000));
    let rules: Vec<Value> = page
        .iter()
        .map(|l| {
            let mut doc = json!({
                "ruleArn": rule_arn(call.region(), &l.name), "ruleName": l.name, "ruleDisabled": l.disabled,
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
