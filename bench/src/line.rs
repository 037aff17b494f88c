//! The `key=value` result lines that `rotor bench`, the C client for Corosync (`csrc/cpg_bench.c`)
//! and `ipc-shm`'s bench print: words separated by spaces, each `key=value` (a word without `=`
//! is a tag, such as `ipc-shm`). One parser reads them all.

use std::collections::BTreeMap;

use crate::dist::Dist;

/// One parsed line: its tags (words without `=`) and its fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// Parses one line; `None` when it has no `key=value` field at all.
    pub fn parse(text: &str) -> Option<Line> {
        let mut line = Line::default();
        for word in text.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    line.fields.insert(k.to_owned(), v.to_owned());
                }
                _ => line.tags.push(word.to_owned()),
            }
        }
        (!line.fields.is_empty()).then_some(line)
    }

    /// The first line of `text` whose field `key` equals `value` (e.g. `bench=lat`).
    pub fn find(text: &str, key: &str, value: &str) -> Option<Line> {
        text.lines()
            .filter_map(Line::parse)
            .find(|l| l.get(key) == Some(value))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field; an error names the key and what was there.
    pub fn num(&self, key: &str) -> Result<f64, String> {
        let v = self
            .get(key)
            .ok_or_else(|| format!("no `{key}=` in line"))?;
        v.parse::<f64>()
            .map_err(|_| format!("`{key}={v}` is not a number"))
    }

    /// A latency distribution field (`P:V,…,100:max`) with the sample count from `count_key`.
    pub fn dist(&self, key: &str, count_key: &str) -> Result<Dist, String> {
        let v = self
            .get(key)
            .ok_or_else(|| format!("no `{key}=` in line"))?;
        let count = self.num(count_key)? as u64;
        Dist::parse(v, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotor_and_c_lines_parse_alike() {
        let rotor = "bench=lat size=64 count=2000 p50_us=31.5 p99_us=80.1 p999_us=120.0 \
                     max_us=300.2 seq_errors=0 dist_us=50:31.5,90:50,99:80.1,99.9:120,100:300.2";
        let l = Line::parse(rotor).unwrap();
        assert_eq!(l.get("bench"), Some("lat"));
        assert_eq!(l.num("p50_us").unwrap(), 31.5);
        assert!(l.tags.is_empty());
        let d = l.dist("dist_us", "count").unwrap();
        assert_eq!(d.count, 2000);
        assert_eq!(d.points.len(), 5);
        assert_eq!(d.value_at(99.0), Some(80.1));
        assert_eq!(d.max(), Some(300.2));
    }

    #[test]
    fn tags_bad_numbers_and_missing_keys() {
        let l = Line::parse("ipc-shm mode=busy size=64 p50_ns=x").unwrap();
        assert_eq!(l.tags, ["ipc-shm"]);
        assert!(l.num("p50_ns").unwrap_err().contains("p50_ns=x"));
        assert!(l.num("nope").unwrap_err().contains("nope"));
        assert!(Line::parse("no fields here").is_none());
        assert!(Line::parse("").is_none());
        let text = "noise\nbench=tput size=64 delivered_msgs_per_s=100\nbench=lat size=1\n";
        assert_eq!(
            Line::find(text, "bench", "lat").unwrap().get("size"),
            Some("1")
        );
        assert!(Line::find(text, "bench", "other").is_none());
    }
}
