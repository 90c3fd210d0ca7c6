//! The `iot-data` operations: device shadows (classic and named), Publish, and the retained
//! message reads.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ferrite_mqtt::packet::{Properties, QoS};
use serde_json::json;

use super::call::{Call, IotData};
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::paging::{page_after, page_response};
use super::Api;
use crate::broker::message::{new_id, now_ms, Message};
use crate::registry::is_resource_name;
use crate::shadow::topics::{Operation, Request as ShadowRequest, MAX_SHADOW_NAME, MAX_THING_NAME};

#[derive(serde::Deserialize, Default)]
struct ShadowQuery {
    name: Option<String>,
}

/// Runs one shadow operation on `thing` (the shadow named by `?name=`, or the classic one).
async fn shadow(api: &Api, call: &Call<IotData>, thing: &str, op: Operation) -> ApiResult {
    let query: ShadowQuery = call.query()?;
    let shadow = query.name;
    if !is_resource_name(thing, MAX_THING_NAME)
        || shadow.as_deref().is_some_and(|s| !is_resource_name(s, MAX_SHADOW_NAME))
    {
        return Err(AwsError::invalid_request("Invalid thing or shadow name"));
    }
    let request = ShadowRequest { thing: thing.to_string(), shadow, op };
    let payload: &[u8] = if op == Operation::Update { &call.body } else { b"" };
    let doc = api.services.shadows.apply(request, payload, now_ms() / 1000).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(doc.to_string()))
}

/// GetThingShadow.
pub async fn get_thing_shadow(api: web::Data<Api>, call: Call<IotData>, thing: web::Path<String>) -> ApiResult {
    shadow(&api, &call, &thing, Operation::Get).await
}

/// UpdateThingShadow.
pub async fn update_thing_shadow(api: web::Data<Api>, call: Call<IotData>, thing: web::Path<String>) -> ApiResult {
    shadow(&api, &call, &thing, Operation::Update).await
}

/// DeleteThingShadow.
pub async fn delete_thing_shadow(api: web::Data<Api>, call: Call<IotData>, thing: web::Path<String>) -> ApiResult {
    shadow(&api, &call, &thing, Operation::Delete).await
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NamedShadowsQuery {
    next_token: Option<String>,
    page_size: Option<usize>,
}

/// ListNamedShadowsForThing: names in order, `pageSize` at a time (default 25, AWS's).
pub async fn list_named_shadows_for_thing(
    api: web::Data<Api>,
    call: Call<IotData>,
    thing: web::Path<String>,
) -> ApiResult {
    let query: NamedShadowsQuery = call.query()?;
    let names = api.services.shadows.named_shadows(&thing).await?;
    let size = query.page_size.unwrap_or(25).clamp(1, 100);
    let (results, next) = page_after(&names, |n| n.as_str(), query.next_token.as_deref(), size);
    page_response(json!({ "results": results, "timestamp": now_ms() / 1000 }), next)
}

/// The topic label after `prefix` in the request's raw path.
fn topic_label(call: &Call<IotData>, prefix: &str) -> Result<String, AwsError> {
    call.req
        .uri()
        .path()
        .strip_prefix(prefix)
        .and_then(ferrite_aws::percent::decode)
        .ok_or_else(|| AwsError::invalid_request("The topic is not valid percent-encoded UTF-8"))
}

#[derive(serde::Deserialize, Default)]
struct PublishQuery {
    qos: Option<u8>,
    retain: Option<bool>,
}

/// Publish: the body goes to the topic as if an MQTT client had published it. A QoS 1
/// publish answers 200 only once it is durable.
pub async fn publish(api: web::Data<Api>, call: Call<IotData>) -> ApiResult {
    let topic = topic_label(&call, "/topics/")?;
    let query: PublishQuery = call.query()?;
    let broker = &api.services.broker;
    if let Err(e) = ferrite_mqtt::topic::validate_topic_name(&topic, &broker.config.topic_limits) {
        return Err(AwsError::invalid_request(format!("Invalid topic {topic:?}: {}", e.message)));
    }
    if !ferrite_aws::reserved::client_may_publish(&topic) {
        return Err(AwsError::new(403, "ForbiddenException", format!("Topic {topic} is reserved for AWS IoT")));
    }
    if call.body.len() > broker.config.max_payload {
        return Err(AwsError::new(
            413,
            "RequestEntityTooLargeException",
            "The payload exceeds the maximum size allowed",
        ));
    }
    let qos = match query.qos.unwrap_or(0) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => return Err(AwsError::invalid_request("qos must be 0 or 1")),
    };
    let msg = Arc::new(Message {
        topic: topic.as_str().into(),
        payload: call.body.clone(),
        qos,
        retain: query.retain.unwrap_or(false),
        properties: Properties::default(),
        publisher: None,
        created_ms: now_ms(),
        rule_hops: 0,
        id: new_id(),
        wire: Default::default(),
    });
    if !broker.publish_and_wait(&msg).await.stored {
        return Err(AwsError::internal());
    }
    Ok(HttpResponse::Ok().finish())
}

/// GetRetainedMessage.
pub async fn get_retained_message(api: web::Data<Api>, call: Call<IotData>) -> ApiResult {
    use base64::Engine as _;
    let topic = topic_label(&call, "/retainedMessage/")?;
    let m = api.services.broker.retained.get(&topic).ok_or_else(|| {
        AwsError::new(404, "ResourceNotFoundException", format!("No retained message exists for topic '{topic}'"))
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "topic": &*m.topic,
        "payload": base64::engine::general_purpose::STANDARD.encode(&m.payload),
        "qos": m.qos as u8,
        "lastModifiedTime": m.created_ms,
    })))
}

/// ListRetainedMessages: summaries in topic order, `maxResults` at a time (default 50).
pub async fn list_retained_messages(api: web::Data<Api>, call: Call<IotData>) -> ApiResult {
    let query: super::paging::TokenQuery = call.query()?;
    let all = api.services.broker.retained.all();
    let (page, next) = page_after(&all, |m| &m.topic, query.next_token.as_deref(), query.size(50, 200));
    let topics: Vec<serde_json::Value> = page
        .iter()
        .map(|m| json!({ "topic": &*m.topic, "payloadSize": m.payload.len(), "qos": m.qos as u8, "lastModifiedTime": m.created_ms }))
        .collect();
    page_response(json!({ "retainedTopics": topics }), next)
}
