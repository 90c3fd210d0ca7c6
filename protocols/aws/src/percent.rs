//! Percent-encoding as AWS does it, in one place: SigV4's canonical requests encode every byte
//! but RFC 3986's unreserved characters, and the API's paths, queries and MQTT usernames arrive
//! percent-encoded. Built on the `percent-encoding` crate; the functions differ only in what
//! they keep and in how they treat a malformed escape.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What AWS's URI encoding escapes: everything but `A-Z a-z 0-9 - _ . ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The same, keeping `/`: for paths, whose segments stay apart.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Encodes a query key or value (or any single component) for a SigV4 canonical request:
/// every byte but the unreserved characters becomes `%XX` with upper-case hex.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Encodes a path for a SigV4 canonical request: as [`encode`], but `/` is kept.
pub fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// Decodes `%XX` escapes, leniently: a `%` not followed by two hex digits stays as it is, and
/// bytes that are not UTF-8 become U+FFFD. SigV4 decodes query components this way before
/// encoding them again, so any query the client signed has one canonical form.
pub fn decode_lossy(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

/// Decodes `%XX` escapes strictly: `None` when a `%` is not followed by two hex digits or the
/// result is not UTF-8. For names taken from a request path, where a malformed escape is the
/// client's error rather than text.
pub fn decode(s: &str) -> Option<String> {
    if !escapes_are_well_formed(s) {
        return None;
    }
    percent_decode_str(s).decode_utf8().ok().map(Cow::into_owned)
}

/// Decodes a form-encoded query component (`application/x-www-form-urlencoded`): as
/// [`decode`], and `+` is a space. MQTT usernames carry custom-authorizer parameters this way.
pub fn decode_form(s: &str) -> Option<String> {
    if !escapes_are_well_formed(s) {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().ok().map(Cow::into_owned)
}

/// Is every `%` followed by two hex digits?
fn escapes_are_well_formed(s: &str) -> bool {
    s.split('%').skip(1).all(|rest| rest.as_bytes().get(..2).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_survive_encoding() {
        assert_eq!(encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(encode("a b/c+d=é"), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(encode_path("/things/a:b c"), "/things/a%3Ab%20c");
    }

    #[test]
    fn lenient_decoding_keeps_malformed_escapes() {
        assert_eq!(decode_lossy("abc%2Fdef"), "abc/def");
        assert_eq!(decode_lossy("100%"), "100%");
        assert_eq!(decode_lossy("%zz%4"), "%zz%4");
        assert_eq!(decode_lossy("%ff"), "\u{fffd}");
        assert_eq!(decode_lossy("a+b"), "a+b");
    }

    #[test]
    fn strict_decoding_refuses_malformed_escapes_and_non_utf8() {
        assert_eq!(decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode("100%"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%+1"), None);
        assert_eq!(decode("%%41"), None);
        assert_eq!(decode("%ff"), None);
        assert_eq!(decode("caf%C3%A9").as_deref(), Some("café"));
    }

    #[test]
    fn form_decoding_turns_plus_into_space_but_not_an_escaped_plus() {
        assert_eq!(decode_form("a+b%2Bc").as_deref(), Some("a b+c"));
        assert_eq!(decode_form("my%20auth").as_deref(), Some("my auth"));
        assert_eq!(decode_form("%zz"), None);
    }
}
