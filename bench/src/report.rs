//! What every report records — the machine (cores, CPU model, kernel), the UTC date and time, the
//! load average — and the two places results go: a Markdown report with its SVG plots under
//! `bench/reports/`, and a generated block inside this bench's own section of
//! docs/BENCHMARKS.md (between marker comments, so hand-written reading around it survives a
//! re-run and other sections are never touched).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine a run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    /// "2 cores (Intel Xeon …), kernel 6.18.44".
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), kernel `{}`",
            self.cores, self.cpu_model, self.kernel
        )
    }
}

/// The 1-, 5- and 15-minute load averages as /proc/loadavg gives them ("0.42 0.60 0.31").
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl Utc {
    pub fn now() -> Utc {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Utc::from_unix(secs)
    }

    /// The civil date of a Unix time (days-from-civil inverted, proleptic Gregorian).
    pub fn from_unix(secs: u64) -> Utc {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
        }
    }

    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// For file names: `2026-11-23-0110`.
    pub fn stamp(&self) -> String {
        format!("{}-{:02}{:02}", self.date(), self.hour, self.minute)
    }

    pub fn time(&self) -> String {
        format!("{:02}:{:02} UTC", self.hour, self.minute)
    }
}

/// The workspace root (bench/ sits one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A report in the making: Markdown text plus the SVG files it links.
pub struct Report {
    /// `rings`, `vs-corosync`.
    pub name: String,
    pub stamp: String,
    pub markdown: String,
    svgs: Vec<(String, String)>,
}

impl Report {
    pub fn new(name: &str, when: Utc) -> Report {
        Report {
            name: name.to_owned(),
            stamp: when.stamp(),
            markdown: String::new(),
            svgs: Vec::new(),
        }
    }

    /// Adds an SVG plot and returns the Markdown that shows it (relative link).
    pub fn plot(&mut self, slug: &str, alt: &str, svg: String) -> String {
        let file = format!("{}-{}-{slug}.svg", self.name, self.stamp);
        self.svgs.push((file.clone(), svg));
        format!("![{alt}]({file})\n")
    }

    /// The report's file name, `<name>-<stamp>.md`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.md", self.name, self.stamp)
    }

    /// Writes the Markdown and the plots into `dir`; returns the report's path.
    pub fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        for (file, svg) in &self.svgs {
            std::fs::write(dir.join(file), svg)?;
        }
        let path = dir.join(self.file_name());
        std::fs::write(&path, &self.markdown)?;
        Ok(path)
    }
}

/// What every report and docs block says about its run.
pub struct RunInfo {
    pub command: String,
    pub machine: Machine,
    pub started: Utc,
    pub load_before: String,
    pub load_after: String,
}

impl Report {
    /// Writes the report under bench/reports/ and, when `docs`, replaces this bench's block in
    /// docs/BENCHMARKS.md (the section named like the report) with the run's date, command,
    /// machine, load, a link to the report and `summary`. Returns the report's path.
    pub fn publish(&self, info: &RunInfo, summary: &str, docs: bool) -> Result<PathBuf, String> {
        let root = workspace_root();
        let path = self
            .write(&root.join("bench/reports"))
            .map_err(|e| format!("writing the report: {e}"))?;
        if docs {
            let file = self.file_name();
            let generated = format!(
                "Last run: {} {}, `{}`; machine: {}; load average {} before, {} after. \
                 Report: [bench/reports/{file}](../bench/reports/{file}).\n\n{summary}",
                info.started.date(),
                info.started.time(),
                info.command,
                info.machine.describe(),
                info.load_before,
                info.load_after,
            );
            update_benchmarks_md(&root.join("docs/BENCHMARKS.md"), &self.name, &generated)
                .map_err(|e| format!("docs/BENCHMARKS.md: {e}"))?;
        }
        Ok(path)
    }
}

fn markers(section: &str) -> (String, String) {
    (
        format!("<!-- rotor-bench {section}: generated, replaced by the next run -->"),
        format!("<!-- rotor-bench {section}: end -->"),
    )
}

/// Puts `generated` into section `## {section}` of a BENCHMARKS.md text: between that section's
/// markers if they exist, else right under its heading, else in a new section at the end.
/// Nothing outside the markers changes.
pub fn replace_generated(doc: &str, section: &str, generated: &str) -> String {
    let (begin, end) = markers(section);
    let block = format!("{begin}\n{}\n{end}", generated.trim_end());
    if let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) {
        if b < e {
            return format!("{}{block}{}", &doc[..b], &doc[e + end.len()..]);
        }
    }
    let heading = format!("## {section}\n");
    let at_heading = doc
        .match_indices(&heading)
        .find(|(i, _)| *i == 0 || doc.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i);
    match at_heading {
        Some(i) => {
            let after = i + heading.len();
            format!("{}\n{block}\n{}", &doc[..after], &doc[after..])
        }
        None => {
            let sep = if doc.ends_with('\n') { "" } else { "\n" };
            format!("{doc}{sep}\n{heading}\n{block}\n")
        }
    }
}

/// Applies `replace_generated` to the file at `path`.
pub fn update_benchmarks_md(path: &Path, section: &str, generated: &str) -> io::Result<()> {
    let doc = std::fs::read_to_string(path)?;
    std::fs::write(path, replace_generated(&doc, section, generated))
}

/// A Markdown table from a header row and rows of cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        header.iter().map(|_| "---|").collect::<String>()
    ));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(Utc::from_unix(0).date(), "1970-01-01");
        // 2000-02-29 12:34 UTC: a leap day in a century leap year.
        let t = Utc::from_unix(951_827_640);
        assert_eq!(t.date(), "2000-02-29");
        assert_eq!((t.hour, t.minute), (12, 34));
        assert_eq!(Utc::from_unix(1_790_000_000).date(), "2026-09-21");
        assert_eq!(Utc::from_unix(1_790_000_000).stamp(), "2026-09-21-1413");
    }

    #[test]
    fn generated_block_is_placed_and_replaced() {
        let doc = "# Benchmarks\n\n## core\ntext\n\n## rings\nhand-written reading\n";
        let once = replace_generated(doc, "rings", "figures v1");
        assert!(once.contains("## rings\n\n<!-- rotor-bench rings: generated"));
        assert!(once.contains("figures v1\n<!-- rotor-bench rings: end -->"));
        assert!(once.contains("hand-written reading"));
        let twice = replace_generated(&once, "rings", "figures v2");
        assert!(!twice.contains("figures v1") && twice.contains("figures v2"));
        assert_eq!(twice.matches("rotor-bench rings: end").count(), 1);
        assert!(twice.starts_with("# Benchmarks\n\n## core\ntext\n"));
        let fresh = replace_generated(doc, "vs-corosync", "ratios");
        assert!(fresh.ends_with(
            "## vs-corosync\n\n<!-- rotor-bench vs-corosync: generated, replaced by the next run -->\nratios\n<!-- rotor-bench vs-corosync: end -->\n"
        ));
        // A heading that only ends with the name is not the section.
        let other = replace_generated("### not ## rings\n", "rings", "x");
        assert!(other.contains("\n## rings\n"));
    }

    #[test]
    fn tables() {
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}
