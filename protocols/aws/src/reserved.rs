//! AWS IoT's reserved topics: which `$aws/…` topics a client may publish to. Requests
//! (shadow get/update/delete, jobs requests, provisioning and Device Defender submissions,
//! MQTT file-delivery requests, Basic Ingest) are the client's; responses, deltas, documents,
//! notifications and events are the service's alone, whatever a policy allows, so that no
//! client can forge them for another.

/// The shadow operations a client requests.
const SHADOW_REQUESTS: &[&str] = &["get", "update", "delete"];

/// The payload formats of the provisioning, Defender and streams requests.
const FORMATS: &[&str] = &["json", "cbor"];

/// True when a client may publish to `topic`. Every topic outside `$aws/` is the client's
/// (policies decide); inside it only the request topics of AWS's reserved-topics table are.
pub fn client_may_publish(topic: &str) -> bool {
    let Some(rest) = topic.strip_prefix("$aws/") else { return true };
    let levels: Vec<&str> = rest.split('/').collect();
    match levels.as_slice() {
        // Basic Ingest: a rule name, then any topic.
        ["rules", rule, _, ..] => !rule.is_empty(),
        ["things", thing, tail @ ..] if !thing.is_empty() => thing_request(tail),
        ["certificates", "create" | "create-from-csr", format] => FORMATS.contains(format),
        ["provisioning-templates", name, "provision", format] => !name.is_empty() && FORMATS.contains(format),
        _ => false,
    }
}

/// The request topics below `$aws/things/{thing}/`.
fn thing_request(tail: &[&str]) -> bool {
    match tail {
        ["shadow", op] => SHADOW_REQUESTS.contains(op),
        ["shadow", "name", name, op] => !name.is_empty() && SHADOW_REQUESTS.contains(op),
        ["jobs", "get" | "start-next"] => true,
        ["jobs", job, "get" | "update"] => !job.is_empty() && !matches!(*job, "notify" | "notify-next"),
        ["defender", "metrics", format] => FORMATS.contains(format),
        ["streams", stream, "describe" | "get", format] => !stream.is_empty() && FORMATS.contains(format),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_clients() {
        for topic in [
            "sensors/1",
            "$SYS/x",
            "$aws/rules/store/any/topic",
            "$aws/things/lamp/shadow/update",
            "$aws/things/lamp/shadow/get",
            "$aws/things/lamp/shadow/delete",
            "$aws/things/lamp/shadow/name/cfg/update",
            "$aws/things/lamp/jobs/get",
            "$aws/things/lamp/jobs/start-next",
            "$aws/things/lamp/jobs/job-1/get",
            "$aws/things/lamp/jobs/job-1/update",
            "$aws/certificates/create/json",
            "$aws/certificates/create-from-csr/cbor",
            "$aws/provisioning-templates/fleet/provision/json",
            "$aws/things/lamp/defender/metrics/json",
            "$aws/things/lamp/streams/s1/get/cbor",
        ] {
            assert!(client_may_publish(topic), "{topic}");
        }
    }

    #[test]
    fn responses_events_and_notifications_are_the_services() {
        for topic in [
            "$aws/things/lamp/shadow/update/accepted",
            "$aws/things/lamp/shadow/update/rejected",
            "$aws/things/lamp/shadow/update/delta",
            "$aws/things/lamp/shadow/update/documents",
            "$aws/things/lamp/shadow/get/accepted",
            "$aws/things/lamp/shadow/name/cfg/update/delta",
            "$aws/things/lamp/shadow/patch",
            "$aws/events/presence/disconnected/other",
            "$aws/events/thing/lamp/created",
            "$aws/things/lamp/jobs/notify",
            "$aws/things/lamp/jobs/notify-next",
            "$aws/things/lamp/jobs/get/accepted",
            "$aws/things/lamp/jobs/job-1/update/accepted",
            "$aws/things/lamp/jobs/notify/get",
            "$aws/certificates/create/json/accepted",
            "$aws/provisioning-templates/fleet/provision/json/rejected",
            "$aws/things/lamp/defender/metrics/json/accepted",
            "$aws/things/lamp/streams/s1/data/cbor",
            "$aws/things/lamp/tunnels/notify",
            "$aws/things//shadow/update",
            "$aws/rules/",
            "$aws/rules/store",
            "$aws/anything",
        ] {
            assert!(!client_may_publish(topic), "{topic}");
        }
    }
}
