//! CONNECT: the checks that need no identity (client id, will, enhanced authentication),
//! the session expiry and keep-alive the server grants, and the CONNACK properties.

use std::sync::Arc;

use crate::broker::BrokerConfig;
use ferrite_mqtt::packet::{reason, Connect, Properties};
use ferrite_mqtt::topic;

/// A CONNECT that may go on to authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The client id: the client's, or one the server assigned.
    pub client_id: Arc<str>,
    /// The id the server assigned to a client that sent none (MQTT 5 tells it).
    pub assigned: Option<String>,
    /// The session expiry the client asked for, seconds (0: ends with the connection).
    pub expiry: u32,
    /// The keep-alive the connection runs with, seconds (0: none).
    pub keep_alive: u16,
    /// The keep-alive the server imposes on an MQTT 5 client, when it differs.
    pub server_keep_alive: Option<u16>,
}

/// A refused CONNECT: the reason code for CONNACK, and why (for the log and MQTT 5's reason
/// string).
pub type Refusal = (u8, &'static str);

/// Checks a CONNECT against the broker's limits; `new_id` names a client that sent no id.
pub fn admit(c: &Connect, cfg: &BrokerConfig, new_id: impl FnOnce() -> String) -> Result<Admission, Refusal> {
    let v5 = c.protocol.is_v5();
    if c.client_id.len() > cfg.max_client_id_len {
        return Err((reason::CLIENT_ID_NOT_VALID, "client id is longer than the maximum (default 128 bytes)"));
    }
    let mut assigned = None;
    let client_id: Arc<str> = if c.client_id.is_empty() {
        if !v5 && !c.clean_start {
            return Err((reason::CLIENT_ID_NOT_VALID, "an empty client id needs clean session"));
        }
        let id = new_id();
        assigned = Some(id.clone());
        id.into()
    } else {
        c.client_id.as_str().into()
    };
    if let Some(w) = &c.will {
        if let Err(e) = topic::validate_topic_name(&w.topic, &cfg.topic_limits) {
            return Err((e.reason_code, e.message));
        }
        if w.payload.len() > cfg.max_payload {
            return Err((reason::PACKET_TOO_LARGE, "will payload is larger than the maximum payload size"));
        }
    }
    if c.properties.authentication_method.is_some() {
        return Err((reason::BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported"));
    }
    let expiry = if v5 {
        c.properties.session_expiry_interval.unwrap_or(0)
    } else if c.clean_start {
        0
    } else {
        cfg.default_session_expiry
    };
    // AWS IoT's range, for every protocol version: no keep-alive or more than the maximum
    // becomes the maximum, less than the minimum becomes the minimum. MQTT 5 clients are
    // told (Server Keep Alive); 3.1.1 has no way to say it, so the server just enforces it.
    let mut keep_alive = c.keep_alive;
    if cfg.max_keep_alive > 0 && (keep_alive == 0 || keep_alive > cfg.max_keep_alive) {
        keep_alive = cfg.max_keep_alive;
    }
    if keep_alive != 0 && keep_alive < cfg.min_keep_alive {
        keep_alive = cfg.min_keep_alive;
    }
    let server_keep_alive = (v5 && keep_alive != c.keep_alive).then_some(keep_alive);
    Ok(Admission { client_id, assigned, expiry, keep_alive, server_keep_alive })
}

/// The CONNACK properties of an accepted MQTT 5 client: the server's limits and what it
/// changed of the client's request (assigned id, keep-alive, a capped session expiry).
pub fn connack_properties(cfg: &BrokerConfig, admission: &Admission, granted_expiry: u32) -> Properties {
    Properties {
        receive_maximum: Some(cfg.receive_maximum),
        topic_alias_maximum: Some(cfg.topic_alias_maximum),
        maximum_packet_size: Some(cfg.max_packet_size() as u32),
        retain_available: Some(1),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(1),
        shared_subscription_available: Some(1),
        assigned_client_identifier: admission.assigned.clone(),
        server_keep_alive: admission.server_keep_alive,
        session_expiry_interval: (granted_expiry != admission.expiry).then_some(granted_expiry),
        ..Properties::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_mqtt::packet::{ProtocolVersion, QoS, Will};

    fn connect(protocol: ProtocolVersion, client_id: &str, clean_start: bool) -> Connect {
        Connect {
            protocol,
            clean_start,
            keep_alive: 30,
            properties: Properties::default(),
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
        }
    }

    #[test]
    fn an_empty_client_id_is_assigned_one_unless_a_311_client_wants_its_session_kept() {
        let cfg = BrokerConfig::default();
        let a = admit(&connect(ProtocolVersion::V5, "", false), &cfg, || "gen-1".into()).unwrap();
        assert_eq!((&*a.client_id, a.assigned.as_deref()), ("gen-1", Some("gen-1")));
        let a = admit(&connect(ProtocolVersion::V311, "", true), &cfg, || "gen-2".into()).unwrap();
        assert_eq!(&*a.client_id, "gen-2");
        let refused = admit(&connect(ProtocolVersion::V311, "", false), &cfg, || unreachable!()).unwrap_err();
        assert_eq!(refused.0, reason::CLIENT_ID_NOT_VALID);
    }

    #[test]
    fn long_ids_bad_wills_and_enhanced_authentication_are_refused() {
        let cfg = BrokerConfig::default();
        let long = "x".repeat(cfg.max_client_id_len + 1);
        assert_eq!(
            admit(&connect(ProtocolVersion::V5, &long, true), &cfg, String::new).unwrap_err().0,
            reason::CLIENT_ID_NOT_VALID
        );
        let mut c = connect(ProtocolVersion::V5, "dev", true);
        c.will = Some(Will {
            topic: "a/+/b".into(),
            payload: bytes::Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::default(),
        });
        assert_eq!(admit(&c, &cfg, String::new).unwrap_err().0, reason::TOPIC_NAME_INVALID);
        if let Some(w) = c.will.as_mut() {
            w.topic = "ok".into();
            w.payload = bytes::Bytes::from(vec![0; cfg.max_payload + 1]);
        }
        assert_eq!(admit(&c, &cfg, String::new).unwrap_err().0, reason::PACKET_TOO_LARGE);
        let mut c = connect(ProtocolVersion::V5, "dev", true);
        c.properties.authentication_method = Some("SCRAM".into());
        assert_eq!(admit(&c, &cfg, String::new).unwrap_err().0, reason::BAD_AUTHENTICATION_METHOD);
    }

    #[test]
    fn expiry_and_keep_alive_follow_the_protocol_version() {
        let cfg = BrokerConfig { max_keep_alive: 60, ..BrokerConfig::default() };
        let a = admit(&connect(ProtocolVersion::V311, "d", false), &cfg, String::new).unwrap();
        assert_eq!((a.expiry, a.keep_alive, a.server_keep_alive), (cfg.default_session_expiry, 30, None));
        // MQTT 3.1.1 keep-alives are held to the same range, without telling the client.
        for (asked, runs) in [(0, 60), (65535, 60), (1, 30), (45, 45)] {
            let mut c = connect(ProtocolVersion::V311, "d", false);
            c.keep_alive = asked;
            let a = admit(&c, &cfg, String::new).unwrap();
            assert_eq!((a.keep_alive, a.server_keep_alive), (runs, None), "{asked}");
        }
        let mut c = connect(ProtocolVersion::V5, "d", false);
        c.keep_alive = 5;
        assert_eq!(admit(&c, &cfg, String::new).unwrap().server_keep_alive, Some(30));
        let open = BrokerConfig { max_keep_alive: 0, min_keep_alive: 0, ..BrokerConfig::default() };
        let mut c = connect(ProtocolVersion::V311, "d", false);
        c.keep_alive = 0;
        assert_eq!(admit(&c, &open, String::new).unwrap().keep_alive, 0, "limits off: no keep-alive");
        let a = admit(&connect(ProtocolVersion::V311, "d", true), &cfg, String::new).unwrap();
        assert_eq!(a.expiry, 0);
        let mut c = connect(ProtocolVersion::V5, "d", false);
        c.keep_alive = 0;
        c.properties.session_expiry_interval = Some(99);
        let a = admit(&c, &cfg, String::new).unwrap();
        assert_eq!((a.expiry, a.keep_alive, a.server_keep_alive), (99, 60, Some(60)));
        let props = connack_properties(&cfg, &a, 50);
        assert_eq!((props.server_keep_alive, props.session_expiry_interval), (Some(60), Some(50)));
        assert_eq!(connack_properties(&cfg, &a, 99).session_expiry_interval, None);
    }
}
