//! Cluster routes: `GET /cluster/status` (members, group leaders, applied indexes, lag: read
//! by `ferrite cluster status`, open like `/metrics`), and the membership changes `ferrite
//! cluster join` and `leave` make (`POST /cluster/members`, `DELETE /cluster/members/{id}`,
//! SigV4-signed like the rest of the API), and the live sessions of a node
//! (`GET /cluster/sessions`, signed).

use actix_web::{web, HttpResponse};
use ferrite_cluster::{GroupStatus, MemberChange};
use serde_json::json;

use super::call::Call;
use ferrite_aws::AwsError;

use super::error::ApiResult;
use super::Api;
use crate::services::Services;

fn group_json(s: &GroupStatus) -> serde_json::Value {
    json!({
        "group": s.group,
        "name": s.name,
        "leader": s.leader,
        "term": s.term,
        "role": s.role,
        "commit": s.commit,
        "applied": s.applied,
        "voters": s.voters,
        "matched": s.matched.iter().map(|(id, m)| json!({"node": id, "matched": m, "lag": s.commit.saturating_sub(*m)})).collect::<Vec<_>>(),
    })
}

/// `GET /cluster/status`.
pub async fn status(api: web::Data<Api>) -> HttpResponse {
    let (services, broker) = (&api.services, &api.services.broker);
    let peers: Vec<serde_json::Value> = match &broker.cluster.net {
        Some(net) => net
            .peers()
            .into_iter()
            .map(|(id, addr)| {
                json!({
                    "node": id,
                    "address": addr.to_string(),
                    "connected": net.connected(id),
                    "routes": services.peer_routes(id),
                    "outbox": services.peer_outbox(id),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    HttpResponse::Ok().json(json!({
        "node": broker.cluster.node_id,
        "address": broker.cluster.address.map(|a| a.to_string()),
        "peers": peers,
        "groups": services.group_statuses().iter().map(group_json).collect::<Vec<_>>(),
    }))
}

/// `GET /ready`: 200 when this node can serve writes, 503 with every reason otherwise
/// (open like `/health`: probes carry no credentials).
pub async fn ready(api: web::Data<Api>) -> HttpResponse {
    let problems = api.services.readiness_problems();
    if problems.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not ready", "problems": problems}))
    }
}

/// `GET /cluster/sessions`: the client ids with a live connection on this node, sorted
/// (`{"node", "connected"}`). Signed like the API: client ids are not for everyone. The
/// chaos harness reads it from every node to check one live session per client id.
pub async fn sessions(api: web::Data<Api>, _call: Call) -> ApiResult {
    Ok(HttpResponse::Ok().json(json!({
        "node": api.services.broker.cluster.node_id,
        "connected": api.services.broker.connected_clients(),
    })))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Join {
    node_id: u64,
    address: String,
}

fn unavailable(message: String) -> AwsError {
    AwsError::new(503, "ServiceUnavailableException", message)
}

/// Applies `change` to every group, meta first; stops at the first group that cannot
/// make it.
async fn change_all(services: &Services, change: MemberChange, context: Vec<u8>) -> Result<(), String> {
    for group in services.groups() {
        change_group(group, change, &context).await?;
    }
    Ok(())
}

/// True when `voters` already reflect `change`.
fn made(voters: &[u64], change: MemberChange) -> bool {
    match change {
        MemberChange::Add(id) => voters.contains(&id),
        MemberChange::Remove(id) => !voters.contains(&id),
    }
}

/// Makes `change` in one group. A change whose leader stepped down on the way (a leader
/// removing itself, an election) may or may not have been made: the voters say which,
/// and the change is proposed again until they show it.
async fn change_group(
    group: &dyn ferrite_cluster::AnyGroup,
    change: MemberChange,
    context: &[u8],
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..6 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            if made(&group.status().voters, change) {
                return Ok(());
            }
        }
        match group.change_members(change, context.to_vec()).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("{}: {last}", group.status().name))
}

/// `POST /cluster/members` `{"nodeId": 4, "address": "10.0.0.4:7000"}`: adds a node (started
/// with `join = true`) to every group.
pub async fn join(api: web::Data<Api>, call: Call) -> ApiResult {
    let join: Join = serde_json::from_slice(&call.body)
        .map_err(|e| AwsError::invalid_request(format!("expected {{\"nodeId\", \"address\"}}: {e}")))?;
    if join.node_id == 0 {
        return Err(AwsError::invalid_request("nodeId must be a positive number"));
    }
    let addr: ferrite_cluster::PeerAddress =
        join.address.parse().map_err(|e| AwsError::invalid_request(format!("address: {e}")))?;
    if api.services.broker.cluster.net.is_none() {
        return Err(AwsError::invalid_request(
            "this node runs alone (no [cluster] table); start it as a cluster node to add members",
        ));
    }
    match change_all(&api.services, MemberChange::Add(join.node_id), addr.to_string().into_bytes()).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"nodeId": join.node_id, "address": addr.to_string()}))),
        Err(e) => Err(unavailable(format!("adding node {}: {e}", join.node_id))),
    }
}

/// `DELETE /cluster/members/{id}`: removes a node from every group.
pub async fn leave(api: web::Data<Api>, _call: Call, id: web::Path<String>) -> ApiResult {
    let id: u64 = id.parse().map_err(|_| AwsError::invalid_request(format!("node id {id:?} is not a number")))?;
    // A member of any group: a leave cut short (meta done, a shard not) can be finished.
    let mut members: Vec<u64> = api.services.group_statuses().into_iter().flat_map(|g| g.voters).collect();
    members.sort_unstable();
    members.dedup();
    if !members.contains(&id) {
        return Err(AwsError::new(
            404,
            "ResourceNotFoundException",
            format!("node {id} is not a member of the cluster (members: {members:?})"),
        ));
    }
    match change_all(&api.services, MemberChange::Remove(id), Vec::new()).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"nodeId": id}))),
        Err(e) => Err(unavailable(format!("removing node {id}: {e}"))),
    }
}
