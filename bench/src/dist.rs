//! Latency distributions as a ladder of percentiles (HdrHistogram's way of showing one): the value
//! at 50, 75, 90, 95, 99, 99.5, 99.9 … % and the maximum. Every source — an HdrHistogram here, the
//! `dist_us=` field of `rotor bench` and of the C client — gives the same ladder, so curves of
//! different systems and rings can be drawn on one chart and compared point by point.

use hdrhistogram::Histogram;

/// The percentiles of the ladder below the maximum. A distribution lists one only when at least
/// one sample lies above it (`count × (1 − p/100) ≥ 1`); the maximum follows as `100`.
pub const LADDER: [f64; 11] = [
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999,
];

/// A latency distribution: `(percentile, value)` points in rising percentile order, the last one
/// `(100, max)`, in whatever unit the source used (the caller knows which).
#[derive(Debug, Clone, PartialEq)]
pub struct Dist {
    /// Samples behind it.
    pub count: u64,
    pub points: Vec<(f64, f64)>,
}

impl Dist {
    /// From `P:V,P:V,…`; percentiles must rise strictly and lie in (0, 100].
    pub fn parse(text: &str, count: u64) -> Result<Dist, String> {
        let mut points = Vec::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let (p, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("distribution point `{pair}`: expected P:V"))?;
            let p: f64 = p
                .parse()
                .map_err(|_| format!("distribution point `{pair}`: bad percentile"))?;
            let v: f64 = v
                .parse()
                .map_err(|_| format!("distribution point `{pair}`: bad value"))?;
            let rising = points.last().is_none_or(|&(last, _)| p > last);
            if !(p > 0.0 && p <= 100.0 && rising) {
                return Err(format!(
                    "distribution point `{pair}`: percentiles must rise within (0, 100]"
                ));
            }
            points.push((p, v));
        }
        if points.is_empty() {
            return Err("empty distribution".into());
        }
        Ok(Dist { count, points })
    }

    /// From a histogram of integer samples, each value divided by `divisor` (1000 turns ns
    /// into µs).
    pub fn from_histogram(h: &Histogram<u64>, divisor: f64) -> Dist {
        let count = h.len();
        let mut points: Vec<(f64, f64)> = LADDER
            .iter()
            .filter(|&&p| count as f64 * (1.0 - p / 100.0) >= 1.0 - 1e-9)
            .map(|&p| (p, h.value_at_quantile(p / 100.0) as f64 / divisor))
            .collect();
        points.push((100.0, h.max() as f64 / divisor));
        Dist { count, points }
    }

    /// The value at exactly percentile `p` of the ladder, if listed.
    pub fn value_at(&self, p: f64) -> Option<f64> {
        self.points
            .iter()
            .find(|&&(q, _)| (q - p).abs() < 1e-9)
            .map(|&(_, v)| v)
    }

    pub fn max(&self) -> Option<f64> {
        self.value_at(100.0)
    }

    /// The point-by-point median of several runs' distributions (percentiles all of them list;
    /// the count is the median count). `None` for no runs.
    pub fn median(runs: &[Dist]) -> Option<Dist> {
        let first = runs.first()?;
        let points = first
            .points
            .iter()
            .filter_map(|&(p, _)| {
                let values: Option<Vec<f64>> = runs.iter().map(|d| d.value_at(p)).collect();
                Some((p, median(&values?)?))
            })
            .collect();
        let counts: Vec<f64> = runs.iter().map(|d| d.count as f64).collect();
        Some(Dist {
            count: median(&counts).unwrap_or(0.0) as u64,
            points,
        })
    }

    /// Back to the `P:V,…` text (values with `decimals` decimals).
    pub fn to_text(&self, decimals: usize) -> String {
        self.points
            .iter()
            .map(|(p, v)| format!("{p}:{v:.decimals$}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where percentile `p` sits on a chart's x axis: the odds 1/(1 − p/100), so 50 % → 2,
/// 90 % → 10, 99 % → 100. The maximum (p = 100) sits at the sample count (the quantile
/// 1 − 1/count), or one decade past `previous` when that is further out or the count is unknown.
pub fn odds(p: f64, count: u64, previous: f64) -> f64 {
    if p < 100.0 {
        1.0 / (1.0 - p / 100.0)
    } else {
        (count as f64).max(previous * 10.0f64.sqrt())
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_ladder_stops_where_samples_run_out() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let d = Dist::from_histogram(&h, 1000.0);
        assert_eq!(d.count, 1000);
        // 1000 samples: 99.9 % has one sample above it, 99.95 % has none.
        let ps: Vec<f64> = d.points.iter().map(|p| p.0).collect();
        assert_eq!(ps, [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0]);
        let p50 = d.value_at(50.0).unwrap();
        assert!((p50 - 500.0).abs() <= 1.0, "{p50}");
        let p99 = d.value_at(99.0).unwrap();
        assert!((p99 - 990.0).abs() <= 1.0, "{p99}");
        assert!((d.max().unwrap() - 1000.0).abs() <= 1.0);
        let back = Dist::parse(&d.to_text(3), d.count).unwrap();
        assert_eq!(back.points.len(), d.points.len());
    }

    #[test]
    fn median_of_runs_and_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let a = Dist::parse("50:1,99:10,100:20", 100).unwrap();
        let b = Dist::parse("50:3,99:30,100:40", 300).unwrap();
        let c = Dist::parse("50:2,90:5,99:20,100:30", 200).unwrap();
        let m = Dist::median(&[a, b, c]).unwrap();
        assert_eq!(m.count, 200);
        // 90 % is missing from two runs, so it is left out.
        assert_eq!(m.points, [(50.0, 2.0), (99.0, 20.0), (100.0, 30.0)]);
        assert!(Dist::median(&[]).is_none());
    }

    #[test]
    fn bad_distributions_are_refused() {
        assert!(Dist::parse("", 1).is_err());
        assert!(Dist::parse("50", 1).is_err());
        assert!(Dist::parse("50:x", 1).is_err());
        assert!(Dist::parse("90:1,50:2", 1).is_err(), "falling");
        assert!(Dist::parse("101:1", 1).is_err());
        assert!(Dist::parse("0:1", 1).is_err());
    }

    #[test]
    fn odds_axis_positions() {
        assert!((odds(50.0, 10, 0.0) - 2.0).abs() < 1e-9);
        assert!((odds(99.0, 10, 0.0) - 100.0).abs() < 1e-6);
        assert!((odds(99.9, 10, 0.0) - 1000.0).abs() < 1e-3);
        assert_eq!(odds(100.0, 100_000, 1000.0), 100_000.0);
        // The maximum never sits left of the last ladder point.
        assert!(odds(100.0, 10, 1000.0) > 1000.0);
    }
}
