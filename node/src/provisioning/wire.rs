//! The device provisioning MQTT API's wire: which request a topic is, and its payloads in
//! JSON or CBOR (the topic's last level says which; answers use the request's format).

use serde_json::{Map, Value};

/// A payload format of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `json`.
    Json,
    /// `cbor`.
    Cbor,
}

/// What a request topic asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `$aws/certificates/create/{format}`: CreateKeysAndCertificate.
    CreateKeysAndCertificate,
    /// `$aws/certificates/create-from-csr/{format}`: CreateCertificateFromCsr.
    CreateCertificateFromCsr,
    /// `$aws/provisioning-templates/{name}/provision/{format}`: RegisterThing.
    RegisterThing {
        /// The template's name.
        template: String,
    },
}

/// A request: its operation, format and topic (answers go to `{topic}/accepted` or
/// `{topic}/rejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What it asks for.
    pub op: Operation,
    /// Its payload format.
    pub format: Format,
    /// The request topic.
    pub topic: String,
}

/// The provisioning request a topic is, if it is one.
pub fn parse(topic: &str) -> Option<Request> {
    let rest = topic.strip_prefix("$aws/")?;
    let levels: Vec<&str> = rest.split('/').collect();
    let (op, format) = match levels.as_slice() {
        ["certificates", "create", f] => (Operation::CreateKeysAndCertificate, *f),
        ["certificates", "create-from-csr", f] => (Operation::CreateCertificateFromCsr, *f),
        ["provisioning-templates", name, "provision", f] if !name.is_empty() => {
            (Operation::RegisterThing { template: name.to_string() }, *f)
        }
        _ => return None,
    };
    let format = match format {
        "json" => Format::Json,
        "cbor" => Format::Cbor,
        _ => return None,
    };
    Some(Request { op, format, topic: topic.to_string() })
}

/// The payload as a JSON object (an empty payload is `{}`), or why it is not one.
pub fn decode(format: Format, payload: &[u8]) -> Result<Map<String, Value>, String> {
    if payload.is_empty() {
        return Ok(Map::new());
    }
    let value: Value = match format {
        Format::Json => serde_json::from_slice(payload).map_err(|e| format!("The payload is not valid JSON: {e}"))?,
        Format::Cbor => ciborium::from_reader(payload).map_err(|e| format!("The payload is not valid CBOR: {e}"))?,
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err("The payload must be an object".into()),
    }
}

/// `doc` in `format`.
pub fn encode(format: Format, doc: &Value) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(doc).unwrap_or_default(),
        Format::Cbor => {
            let mut out = Vec::new();
            if let Err(e) = ciborium::into_writer(doc, &mut out) {
                tracing::error!(error = %e, "cannot encode a provisioning answer as CBOR");
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topics_name_the_operation_and_format() {
        let r = parse("$aws/provisioning-templates/fleet/provision/cbor").unwrap();
        assert_eq!(r.op, Operation::RegisterThing { template: "fleet".into() });
        assert_eq!(r.format, Format::Cbor);
        assert_eq!(parse("$aws/certificates/create/json").unwrap().op, Operation::CreateKeysAndCertificate);
        assert_eq!(parse("$aws/certificates/create-from-csr/json").unwrap().op, Operation::CreateCertificateFromCsr);
        for other in [
            "$aws/certificates/create/xml",
            "$aws/certificates/create/json/accepted",
            "a/b",
            "$aws/provisioning-templates//provision/json",
        ] {
            assert!(parse(other).is_none(), "{other}");
        }
    }

    #[test]
    fn cbor_and_json_carry_the_same_documents() {
        let doc = json!({"certificateOwnershipToken": "t", "parameters": {"SerialNumber": "1", "n": 2}});
        for format in [Format::Json, Format::Cbor] {
            let bytes = encode(format, &doc);
            assert_eq!(Value::Object(decode(format, &bytes).unwrap()), doc);
        }
        assert!(decode(Format::Cbor, b"\xff\x00").is_err());
        assert!(decode(Format::Json, b"[1]").is_err());
        assert!(decode(Format::Json, b"").unwrap().is_empty());
    }
}
