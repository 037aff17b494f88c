//! The syntax of corosync.conf: nested `name {` … `}` sections, `key: value` lines, `#`
//! comment lines. Follows `parse_section` in corosync's `exec/coroparse.c`: a line is a
//! section start if it has a `{`, else a pair if it has a `:`, else a close if it has a `}`;
//! the value is the rest of the line after the first `:`, trimmed, quotes and all.

use super::{ConfigError, ErrorKind};
use crate::cmap::KEY_NAME_LEN_MAX;

/// Longest line accepted, without its newline: corosync reads lines into a 512-byte buffer.
pub const LINE_LEN_MAX: usize = 510;
/// Deepest nesting of sections accepted (corosync's own files nest three deep).
pub const SECTION_DEPTH_MAX: usize = 16;

/// A section, or the whole file (name `""`, line 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Line of the `name {`, 1-based.
    pub line: u32,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Pair(Pair),
    Section(Section),
}

/// One `key: value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
    pub line: u32,
}

impl Section {
    pub fn pairs(&self) -> impl Iterator<Item = &Pair> {
        self.items
            .iter()
            .filter_map(|i| if let Item::Pair(p) = i { Some(p) } else { None })
    }

    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.items.iter().filter_map(|i| {
            if let Item::Section(s) = i {
                Some(s)
            } else {
                None
            }
        })
    }
}

/// corosync trims spaces, tabs and the Latin-1 no-break space (0xA0).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{a0}'
}

/// Parses `text` (read from `file`, named in errors) into a tree.
pub fn parse_tree(file: &str, text: &str) -> Result<Section, ConfigError> {
    let error = |line: u32, subject: &str, kind: ErrorKind, reason: String| ConfigError::Invalid {
        file: file.to_string(),
        line,
        subject: subject.to_string(),
        kind,
        reason,
    };
    // The open sections, outermost first; `stack[0]` is the file itself.
    let mut stack: Vec<Section> = vec![Section {
        name: String::new(),
        line: 0,
        items: Vec::new(),
    }];
    let path_of = |stack: &[Section]| -> String {
        let names: Vec<&str> = stack[1..].iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            "top level".to_string()
        } else {
            names.join(".")
        }
    };

    for (index, raw) in text.split('\n').enumerate() {
        let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.len() > LINE_LEN_MAX {
            let reason = format!("line is longer than {LINE_LEN_MAX} characters");
            return Err(error(line_no, &path_of(&stack), ErrorKind::Syntax, reason));
        }
        let line = raw.trim_matches(is_blank);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }

        if let Some((before, after)) = line.split_once('{') {
            // `remove_whitespace(line, 1)` also drops a trailing ':' before the brace.
            let name = before
                .trim_matches(is_blank)
                .trim_end_matches(|c| c == ':' || is_blank(c));
            let path = path_of(&stack);
            if name.is_empty() {
                return Err(error(
                    line_no,
                    &path,
                    ErrorKind::Syntax,
                    "missing section name before '{'".into(),
                ));
            }
            if !after.trim_matches(is_blank).is_empty() {
                let reason = format!(
                    "unexpected characters after '{{': {:?}",
                    after.trim_matches(is_blank)
                );
                return Err(error(line_no, name, ErrorKind::Syntax, reason));
            }
            if stack.len() > SECTION_DEPTH_MAX {
                let reason = format!("sections nest deeper than {SECTION_DEPTH_MAX}");
                return Err(error(line_no, name, ErrorKind::Syntax, reason));
            }
            stack.push(Section {
                name: name.to_string(),
                line: line_no,
                items: Vec::new(),
            });
            let full = path_of(&stack);
            if full.len() > KEY_NAME_LEN_MAX {
                let reason = format!("section path is longer than {KEY_NAME_LEN_MAX} characters");
                return Err(error(line_no, &full, ErrorKind::Syntax, reason));
            }
            continue;
        }

        if let Some((before, after)) = line.split_once(':') {
            let key = before.trim_matches(is_blank);
            if key.is_empty() {
                return Err(error(
                    line_no,
                    &path_of(&stack),
                    ErrorKind::Syntax,
                    "missing key name before ':'".into(),
                ));
            }
            let value = after.trim_matches(is_blank);
            let top = stack.last_mut().expect("the file itself is never popped");
            top.items.push(Item::Pair(Pair {
                key: key.to_string(),
                value: value.to_string(),
                line: line_no,
            }));
            continue;
        }

        if line.contains('}') {
            if line != "}" {
                let reason = format!("unexpected characters around '}}': {line:?}");
                return Err(error(line_no, &path_of(&stack), ErrorKind::Syntax, reason));
            }
            if stack.len() == 1 {
                let reason = "'}' closes no section (unbalanced braces)".to_string();
                return Err(error(
                    line_no,
                    "top level",
                    ErrorKind::UnbalancedBraces,
                    reason,
                ));
            }
            let done = stack.pop().expect("checked: more than the file is open");
            stack
                .last_mut()
                .expect("the file itself is never popped")
                .items
                .push(Item::Section(done));
            continue;
        }

        let subject = path_of(&stack);
        let reason = format!("expected `key: value`, `name {{` or `}}`, got {line:?}");
        return Err(error(line_no, &subject, ErrorKind::Syntax, reason));
    }

    if stack.len() > 1 {
        let open = stack.last().expect("checked: more than the file is open");
        let reason = "section is never closed (missing '}', unbalanced braces)".to_string();
        return Err(error(
            open.line,
            &path_of(&stack),
            ErrorKind::UnbalancedBraces,
            reason,
        ));
    }
    Ok(stack.pop().expect("the file itself"))
}
