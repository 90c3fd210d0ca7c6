//! The text of `Fn::Sub`: `${Name}` placeholders among literal text, with `${!Literal}` written
//! out as `${Literal}`.

/// One run of a `Fn::Sub` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Copied as is.
    Text(String),
    /// Replaced by the variable or parameter of that name.
    Name(String),
}

/// Splits a `Fn::Sub` string into pieces; the reason when a placeholder is malformed.
pub(crate) fn pieces(source: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = source;
    while let Some((before, after)) = rest.split_once("${") {
        text.push_str(before);
        if let Some(literal) = after.strip_prefix('!') {
            text.push_str("${");
            rest = literal;
            continue;
        }
        let Some((name, after)) = after.split_once('}') else {
            return Err("\"${\" without a closing \"}\"".to_string());
        };
        if name.is_empty() {
            return Err("empty placeholder \"${}\"".to_string());
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Name(name.to_string()));
        rest = after;
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.to_string())
    }

    fn name(s: &str) -> Piece {
        Piece::Name(s.to_string())
    }

    #[test]
    fn placeholders_split_the_text() {
        assert_eq!(
            pieces("a/${Serial}/${AWS::IoT::Certificate::Id}").unwrap(),
            vec![text("a/"), name("Serial"), text("/"), name("AWS::IoT::Certificate::Id")]
        );
    }

    #[test]
    fn bang_escapes_a_placeholder() {
        assert_eq!(pieces("${!Literal} and ${x}").unwrap(), vec![text("${Literal} and "), name("x")]);
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        assert!(pieces("a ${open").is_err());
        assert!(pieces("a ${}").is_err());
        assert_eq!(pieces("$ {x} $x }").unwrap(), vec![text("$ {x} $x }")]);
    }
}
