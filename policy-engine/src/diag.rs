//! Diagnostics that name the file, line and field of a bundle error.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One problem in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// Field path, e.g. `policies[1].prompt_rules[0].regexes[2]`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Every error found in a bundle, in source order.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{} error(s) in bundle{}", .0.len(), .0.first().map(|d| format!(", first: {d}")).unwrap_or_default())]
pub struct BundleErrors(pub Vec<Diagnostic>);

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

/// Maps field paths of a YAML (or JSON) document to the line and column where they appear.
#[derive(Default)]
pub struct Locator {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

impl Locator {
    /// Index `src`. A document that does not parse yields an empty index.
    pub fn new(src: &str) -> Self {
        let mut l = Locator::default();
        let mut p = Parser::new_from_str(src);
        let _ = p.load(&mut l, false);
        l
    }

    fn path(&self) -> String {
        let mut s = String::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k) } => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Frame::Seq { index } => {
                    s.push_str(&format!("[{index}]"));
                }
                Frame::Map { key: None } => {}
            }
        }
        s
    }

    fn record(&mut self, mark: &Marker) {
        let p = self.path();
        self.positions
            .entry(p)
            .or_insert((mark.line(), mark.col() + 1));
    }

    /// After a complete value: the parent map expects a key again, or the sequence moves on.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }

    /// Position of `field`, or of its nearest ancestor that appears in the source.
    pub fn find(&self, field: &str) -> (usize, usize) {
        let mut f = field.to_owned();
        loop {
            if let Some(p) = self.positions.get(&f) {
                return *p;
            }
            match f.rfind(['.', '[']) {
                Some(i) => f.truncate(i),
                None => return self.positions.get("").copied().unwrap_or((1, 1)),
            }
        }
    }

    pub fn diagnostic(&self, field: &str, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.find(field);
        Diagnostic {
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl MarkedEventReceiver for Locator {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                if let Some(Frame::Map { key }) = self.stack.last_mut() {
                    if key.is_none() {
                        *key = Some(s);
                        self.record(&mark);
                        return;
                    }
                }
                self.record(&mark);
                self.advance();
            }
            Event::Alias(_) => {
                self.record(&mark);
                self.advance();
            }
            Event::MappingStart(..) => {
                self.record(&mark);
                self.stack.push(Frame::Map { key: None });
            }
            Event::SequenceStart(..) => {
                self.record(&mark);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            _ => {}
        }
    }
}

/// Turn a serde_yaml error into a diagnostic. Its message starts with the field path.
pub fn from_serde(e: &serde_yaml::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (field, message) = match msg.split_once(": ") {
        Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
        _ => (".".to_owned(), msg),
    };
    Diagnostic {
        line,
        column,
        field,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_fields() {
        let src = "a: 1\npolicies:\n  - id: x\n    rules:\n      - one\n      - two\n  - id: y\n";
        let l = Locator::new(src);
        assert_eq!(l.find("a").0, 1);
        assert_eq!(l.find("policies[0].id").0, 3);
        assert_eq!(l.find("policies[0].rules[1]").0, 6);
        assert_eq!(l.find("policies[1].id").0, 7);
        // unknown child falls back to its parent
        assert_eq!(l.find("policies[1].nope").0, 7);
    }
}
