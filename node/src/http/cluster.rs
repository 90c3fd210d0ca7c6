//! Cluster routes: `GET /cluster/status` (members, group leaders, applied indexes, lag: read
//! by `ferrite cluster status`, open like `/metrics`), and the membership changes `ferrite
//! cluster join` and `leave` make (`POST /cluster/members`, `DELETE /cluster/members/{id}`,
//! SigV4-signed like the rest of the API), and the live sessions of a node
//! (`GET /cluster/sessions`, signed).

use actix_web::{web, HttpRequest, HttpResponse};
use ferrite_cluster::{GroupStatus, MemberChange};
use serde_json::json;

use super::{authenticate, aws_error, Api, ApiResult, AwsError};
use crate::broker::Broker;

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

/// Every group this node runs, meta first.
pub(crate) fn statuses(broker: &Broker) -> Vec<GroupStatus> {
    std::iter::once(broker.meta.status())
        .chain(broker.shadows.statuses())
        .chain(std::iter::once(broker.retained_group.status()))
        .chain(broker.takeover.as_ref().map(|t| t.owners.status()))
        .collect()
}

/// `GET /cluster/status`.
pub(super) async fn status(api: web::Data<Api>) -> HttpResponse {
    let broker = &api.broker;
    let peers: Vec<serde_json::Value> = match &broker.cluster.net {
        Some(net) => net
            .peers()
            .into_iter()
            .map(|(id, addr)| {
                json!({
                    "node": id,
                    "address": addr.to_string(),
                    "connected": net.connected(id),
                    "routes": broker.peer_routes(id),
                    "outbox": broker.peer_outbox(id),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    HttpResponse::Ok().json(json!({
        "node": broker.cluster.node_id,
        "address": broker.cluster.address.map(|a| a.to_string()),
        "peers": peers,
        "groups": statuses(broker).iter().map(group_json).collect::<Vec<_>>(),
    }))
}

/// `GET /cluster/sessions`: the client ids with a live connection on this node, sorted
/// (`{"node", "connected"}`). Signed like the API: client ids are not for everyone. The
/// chaos harness reads it from every node to check one live session per client id.
pub(super) async fn sessions(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    Ok(HttpResponse::Ok().json(json!({
        "node": api.broker.cluster.node_id,
        "connected": api.broker.connected_clients(),
    })))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Join {
    node_id: u64,
    address: String,
}

fn invalid(message: &str) -> AwsError {
    AwsError { status: 400, error_type: "InvalidRequestException", message: message.to_string() }
}

/// Applies `change` to every group, meta first; stops at the first group that cannot
/// make it.
async fn change_all(broker: &Broker, change: MemberChange, context: Vec<u8>) -> Result<(), String> {
    change_group(&broker.meta, change, &context).await?;
    for shard in broker.shadows.groups() {
        change_group(shard, change, &context).await?;
    }
    change_group(&broker.retained_group, change, &context).await?;
    if let Some(takeover) = &broker.takeover {
        change_group(&takeover.owners, change, &context).await?;
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
async fn change_group<S: ferrite_cluster::StateMachine>(
    group: &ferrite_cluster::Group<S>,
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
pub(super) async fn join(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let join: Join =
        serde_json::from_slice(&body).map_err(|e| invalid(&format!("expected {{\"nodeId\", \"address\"}}: {e}")))?;
    if join.node_id == 0 {
        return Err(invalid("nodeId must be a positive number"));
    }
    let addr: std::net::SocketAddr = join
        .address
        .parse()
        .map_err(|_| invalid(&format!("address {:?} is not HOST:PORT with an IP address", join.address)))?;
    if api.broker.cluster.net.is_none() {
        return Err(invalid("this node runs alone (no [cluster] table); start it as a cluster node to add members"));
    }
    match change_all(&api.broker, MemberChange::Add(join.node_id), addr.to_string().into_bytes()).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"nodeId": join.node_id, "address": addr.to_string()}))),
        Err(e) => Ok(aws_error(503, "ServiceUnavailableException", &format!("adding node {}: {e}", join.node_id))),
    }
}

/// `DELETE /cluster/members/{id}`: removes a node from every group.
pub(super) async fn leave(api: web::Data<Api>, req: HttpRequest, id: web::Path<u64>, body: web::Bytes) -> ApiResult {
    authenticate(&api, &req, &body, "iot")?;
    let id = id.into_inner();
    match change_all(&api.broker, MemberChange::Remove(id), Vec::new()).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"nodeId": id}))),
        Err(e) => Ok(aws_error(503, "ServiceUnavailableException", &format!("removing node {id}: {e}"))),
    }
}
