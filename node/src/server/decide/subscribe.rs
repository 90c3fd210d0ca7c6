//! SUBSCRIBE and UNSUBSCRIBE: which filters are refused (and with which reason code) before
//! the broker is asked, which break the protocol, and the acknowledgements' reason codes.
//! The broker then adds what is accepted (and may still refuse one for the session's quota).

use ferrite_mqtt::packet::{reason, SubOptions};
use ferrite_mqtt::topic::{self, TopicLimits};

/// What to do with one filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Ask the broker to add it.
    Subscribe,
    /// Answer this reason code for it in the SUBACK (the codec turns every failure into
    /// 0x80 for MQTT 3.1.1) and go on with the other filters.
    Refuse {
        /// The SUBACK reason code.
        code: u8,
        /// For the log.
        why: &'static str,
        /// The refusal is an authorization failure (logged and counted as AWS's
        /// `Subscribe.AuthError`).
        unauthorized: bool,
    },
    /// Close the connection with this reason code: the client broke the protocol.
    Violation(u8, &'static str),
}

/// Decides one filter: `allowed` says whether a policy allows `iot:Subscribe` on it, which
/// is checked first, as AWS IoT does, so an unauthorized client learns nothing about
/// filters it may not use.
pub fn filter(raw: &str, options: SubOptions, allowed: bool, limits: &TopicLimits) -> FilterDecision {
    if !allowed {
        return FilterDecision::Refuse {
            code: reason::NOT_AUTHORIZED,
            why: "no policy allows iot:Subscribe on this topic filter",
            unauthorized: true,
        };
    }
    match topic::parse_subscription(raw, limits) {
        Err(e) => FilterDecision::Refuse { code: e.reason_code, why: e.message, unauthorized: false },
        // MQTT 5 section 3.8.3.1: No Local on a shared subscription is a protocol error.
        Ok(parsed) if parsed.share_group.is_some() && options.no_local => {
            FilterDecision::Violation(reason::PROTOCOL_ERROR, "no local on a shared subscription")
        }
        Ok(_) => FilterDecision::Subscribe,
    }
}

/// The UNSUBACK reason code for a filter: whether the session had it.
pub fn unsubscribe_code(existed: bool) -> u8 {
    if existed {
        reason::SUCCESS
    } else {
        reason::NO_SUBSCRIPTION_EXISTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_mqtt::packet::QoS;

    fn options(no_local: bool) -> SubOptions {
        SubOptions { qos: QoS::AtLeastOnce, no_local, retain_as_published: false, retain_handling: 0 }
    }

    #[test]
    fn authorization_is_checked_before_the_filter_itself() {
        let limits = TopicLimits::default();
        let refused = filter("a/#/b", options(false), false, &limits);
        assert!(matches!(refused, FilterDecision::Refuse { code: reason::NOT_AUTHORIZED, unauthorized: true, .. }));
    }

    #[test]
    fn invalid_filters_are_refused_with_their_reason_code() {
        let limits = TopicLimits::default();
        for bad in ["a/#/b", "a+/b", "", "$share/g", "$share//x", "$share/g+/x"] {
            match filter(bad, options(false), true, &limits) {
                FilterDecision::Refuse { code, unauthorized: false, .. } => {
                    assert_eq!(code, reason::TOPIC_FILTER_INVALID, "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn filters_past_the_limits_are_refused() {
        let limits = TopicLimits { max_bytes: 8, max_slashes: 2 };
        assert!(matches!(filter("a/b/c/d", options(false), true, &limits), FilterDecision::Refuse { .. }));
        assert!(matches!(filter("abcdefghij", options(false), true, &limits), FilterDecision::Refuse { .. }));
        assert_eq!(filter("a/+/#", options(false), true, &limits), FilterDecision::Subscribe);
    }

    #[test]
    fn no_local_on_a_shared_subscription_breaks_the_protocol() {
        let limits = TopicLimits::default();
        assert_eq!(
            filter("$share/g/t/#", options(true), true, &limits),
            FilterDecision::Violation(reason::PROTOCOL_ERROR, "no local on a shared subscription")
        );
        assert_eq!(filter("$share/g/t/#", options(false), true, &limits), FilterDecision::Subscribe);
        assert_eq!(filter("t/#", options(true), true, &limits), FilterDecision::Subscribe);
    }

    #[test]
    fn unsubscribe_says_whether_the_subscription_existed() {
        assert_eq!(unsubscribe_code(true), reason::SUCCESS);
        assert_eq!(unsubscribe_code(false), reason::NO_SUBSCRIPTION_EXISTED);
    }
}
