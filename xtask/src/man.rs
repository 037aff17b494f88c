//! `cargo xtask man [DIR]`: the man pages, generated — rotord(8), rotor(8) and one
//! rotor-<subcommand>(8) each from the same clap definitions `--help` prints (rotor-cli, through
//! clap_mangen), and rotor.conf(5) from docs/OPERATIONS.md's "The configuration" section (the
//! keys, defaults, transports, rotor{} and the deliberate differences from corosync.conf(5)),
//! so neither can drift from what it documents. Default DIR: target/man.

use std::fs;
use std::path::{Path, PathBuf};

/// The section of docs/OPERATIONS.md that rotor.conf(5) is made of.
const CONF_SECTION: &str = "## The configuration";

/// A generated page: its file name (`rotord.8`) and text.
pub struct Page {
    pub file: String,
    pub text: String,
}

/// Every page, rendered.
pub fn pages(root: &Path) -> Result<Vec<Page>, String> {
    let mut out = Vec::new();
    for page in rotor_cli::man_pages() {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page.command)
            .title(page.name.to_uppercase())
            .section(page.section)
            .source(format!("rotor {}", env!("CARGO_PKG_VERSION")))
            .manual("rotor")
            .render(&mut buf)
            .map_err(|e| format!("render {}: {e}", page.name))?;
        out.push(Page {
            file: format!("{}.{}", page.name, page.section),
            text: String::from_utf8(buf).map_err(|e| format!("{}: {e}", page.name))?,
        });
    }
    let ops = root.join("docs/OPERATIONS.md");
    let text = fs::read_to_string(&ops).map_err(|e| format!("{}: {e}", ops.display()))?;
    out.push(Page {
        file: "rotor.conf.5".into(),
        text: rotor_conf_page(&text)?,
    });
    Ok(out)
}

/// Writes every page into `dir`.
pub fn write(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for page in pages(root)? {
        let path = dir.join(&page.file);
        fs::write(&path, page.text).map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let dir = match args {
        [] => crate::root().join("target/man"),
        [dir] => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask man [DIR]".into()),
    };
    for path in write(&crate::root(), &dir)? {
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// rotor.conf(5): the configuration section of OPERATIONS.md as roff.
fn rotor_conf_page(operations: &str) -> Result<String, String> {
    let start = operations
        .find(CONF_SECTION)
        .ok_or_else(|| format!("docs/OPERATIONS.md has no \"{CONF_SECTION}\" section"))?;
    let body = &operations[start + CONF_SECTION.len()..];
    let end = body.find("\n## ").unwrap_or(body.len());
    let mut out = format!(
        ".TH ROTOR.CONF 5 \"\" \"rotor {}\" \"rotor\"\n.SH NAME\nrotor.conf \\- the \
         corosync.conf that rotord reads, and how rotor differs from corosync.conf(5)\n\
         .SH SYNOPSIS\n/etc/corosync/corosync.conf\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(&markdown_to_roff(&body[..end]));
    out.push_str(
        ".SH FILES\n/etc/corosync/corosync.conf, /etc/corosync/authkey, /var/lib/rotor\n\
         .SH SEE ALSO\nrotord(8), rotor(8), corosync.conf(5), votequorum(5)\n",
    );
    Ok(out)
}

/// The Markdown OPERATIONS.md uses (### headings, paragraphs, `-` lists, tables, fenced code,
/// inline code and bold) as man(7) roff.
fn markdown_to_roff(md: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut table_row = 0;
    let mut paragraph_open = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            if in_code {
                out.push_str(".fi\n.RE\n");
            } else {
                out.push_str(".PP\n.RS\n.nf\n");
            }
            in_code = !in_code;
            paragraph_open = false;
            continue;
        }
        if in_code {
            out.push_str(&escape_line(line));
            out.push('\n');
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            paragraph_open = false;
            table_row = 0;
            continue;
        }
        if let Some(h) = trimmed.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", inline(h).replace('"', "")));
            paragraph_open = false;
            continue;
        }
        if trimmed.starts_with('|') {
            let cells: Vec<&str> = trimmed
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            table_row += 1;
            if table_row == 1 {
                out.push_str(&format!(
                    ".PP\n\\fI{}\\fR\n",
                    inline(&cells.join(" \u{2014} "))
                ));
            } else {
                out.push_str(&format!(
                    ".TP\n{}\n{}\n",
                    inline(cells[0]),
                    inline(&cells[1..].join(" \u{2014} "))
                ));
            }
            paragraph_open = false;
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ") {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", inline(item)));
            paragraph_open = true;
            continue;
        }
        if !paragraph_open {
            out.push_str(".PP\n");
            paragraph_open = true;
        }
        out.push_str(&inline(trimmed));
        out.push('\n');
    }
    out
}

/// Inline Markdown (`code`, **bold**, [text](link)) as roff fonts, text escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut code = false;
    let mut bold = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '\\' => out.push_str("\\e"),
            '-' if code => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    let out = strip_links(&out);
    escape_line(&out)
}

/// `[text](target)` → `text`.
fn strip_links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A line roff would read as a request (leading `.` or `'`) is protected, and characters
/// outside ASCII become groff's `\[uXXXX]` glyphs (troff reads its input as Latin-1).
fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    if line.starts_with('.') || line.starts_with('\'') {
        out.push_str("\\&");
    }
    for c in line.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn every_page_documents_every_option_and_renders_cleanly() {
        let root = crate::root();
        let dir = std::env::temp_dir().join(format!("rotor-man-{}", std::process::id()));
        let written = write(&root, &dir).unwrap();
        assert!(written.len() >= 8, "{written:?}");
        for page in rotor_cli::man_pages() {
            let text =
                fs::read_to_string(dir.join(format!("{}.{}", page.name, page.section))).unwrap();
            assert!(text.starts_with(".ie"), "{}: roff", page.name);
            for arg in page.command.get_arguments() {
                if arg.is_hide_set() {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    assert!(
                        text.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "{}: --{long} missing",
                        page.name
                    );
                }
                if let Some(short) = arg.get_short() {
                    assert!(
                        text.contains(&format!("\\-{short}")),
                        "{}: -{short} missing",
                        page.name
                    );
                }
            }
        }
        let conf = fs::read_to_string(dir.join("rotor.conf.5")).unwrap();
        for want in [
            "metrics_listen",
            "Deliberate differences",
            "token_retransmit",
            "poll_mode",
        ] {
            assert!(conf.contains(want), "rotor.conf.5 lacks {want}");
        }
        // groff reads every page without a warning.
        for path in &written {
            let out = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(path)
                .output();
            match out {
                Ok(o) => assert!(
                    o.status.success() && o.stderr.is_empty(),
                    "groff {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => panic!("groff (cargo xtask deps installs it): {e}"),
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn markdown_becomes_roff() {
        let roff = markdown_to_roff(
            "### rotor { }\n\nText with `code-x` and **bold**.\n\n| key | default |\n|---|---|\n\
             | `a` | 1 |\n\n- item [link](x)\n\n```\n.dot line\n```\n",
        );
        assert!(roff.contains(".SS \"rotor { }\""), "{roff}");
        assert!(
            roff.contains("Text with \\fBcode\\-x\\fR and \\fBbold\\fR."),
            "{roff}"
        );
        assert!(roff.contains(".TP\n\\fBa\\fR\n1\n"), "{roff}");
        assert!(roff.contains(".IP \\(bu 2\nitem link\n"), "{roff}");
        assert!(roff.contains(".nf\n\\&.dot line\n.fi"), "{roff}");
        assert_eq!(escape_line("a \u{2014} b"), "a \\[u2014] b");
    }
}
