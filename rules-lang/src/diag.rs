//! Diagnostics: errors as values with a byte span, rendered like rustc (file:line:col, the source
//! line, a caret) so that a rule author can find and fix the problem without guessing.

use std::fmt::Write as _;

/// A half-open byte range in one source text; every AST node and diagnostic carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// Builds a span; `end` is clamped so that it never precedes `start`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end: end.max(start) }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Moves the span right by `offset` bytes (for text parsed out of a larger source).
    pub fn shifted(self, offset: usize) -> Span {
        Span::new(self.start + offset, self.end + offset)
    }
}

/// One error found in a rule file or statement, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it, when there is something specific to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: message.into(), help: None }
    }

    /// Adds the "help:" line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Line and column (both 1-based, column in characters) of the span's start in `source`.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.span.start)
    }

    /// Renders the diagnostic the way rustc does: a headline, ` --> file:line:col`, the source
    /// line with a caret under the span, and the help line.
    pub fn render(&self, file: &str, source: &str) -> String {
        let start = self.span.start.min(source.len());
        let (line, col) = line_col(source, start);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let text = source[line_start..line_end].trim_end_matches('\r');
        let end = self.span.end.clamp(start, line_end);
        let caret_width = source[start..end].chars().count().max(1);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {text}");
        let lead: String = text.chars().take(col - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(caret_width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// 1-based line and character column of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Renders several diagnostics for one file, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], file: &str, source: &str) -> String {
    diagnostics.iter().map(|d| d.render(file, source)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_source_line_and_caret() {
        let src = "SELECT a\nFROM 't' WHERE lenght(a) > 1";
        let start = src.find("lenght").unwrap();
        let d = Diagnostic::new(Span::new(start, start + 6), "unknown function `lenght`")
            .with_help("did you mean `length`?");
        let text = d.render("r.sql", src);
        assert_eq!(
            text,
            "error: unknown function `lenght`\n --> r.sql:2:16\n  |\n2 | FROM 't' WHERE lenght(a) > 1\n  |                ^^^^^^\n  = help: did you mean `length`?\n"
        );
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("é x", 3), (1, 3));
    }
}
