//! The reports' plots, written as SVG text by hand: a latency percentile chart (x = percentile as
//! the odds 1/(1 − q) on a log axis, so 50 %, 90 %, 99 %, 99.9 % are evenly spaced; y = latency on
//! a log axis; one curve per system or ring) and a bar chart (log y, one bar per series in each
//! group, its value written above it). Two chart kinds did not justify a plotting crate (plotters
//! would bring a font stack and a much longer build on these two cores); the output is plain SVG
//! 1.1 that browsers and GitHub render.

use std::fmt::Write;

use crate::dist::{odds, Dist};

/// The plot area's width; the legend to its right is as wide as its longest name needs.
const PLOT_WIDTH: f64 = 500.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;
/// Roughly the advance of one 12 px sans-serif character.
const CHAR_WIDTH: f64 = 6.8;
/// Series colours, in order (colour-blind-safe palette of Okabe and Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// The drawing's size: the plot area plus a legend wide enough for `names`.
struct Canvas {
    width: f64,
}

impl Canvas {
    fn for_names(names: &[&str]) -> Canvas {
        let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let legend = (longest as f64 * CHAR_WIDTH + 50.0).max(160.0);
        Canvas {
            width: LEFT + PLOT_WIDTH + legend,
        }
    }

    /// (x, y, width, height) of the plot area.
    fn plot_box(&self) -> (f64, f64, f64, f64) {
        (LEFT, TOP, PLOT_WIDTH, HEIGHT - TOP - BOTTOM)
    }
}

/// Series `i`'s colour, and a dash pattern once the colours have all been used.
fn style(i: usize) -> (&'static str, &'static str) {
    let dash = if i >= COLOURS.len() {
        " stroke-dasharray=\"6 3\""
    } else {
        ""
    };
    (COLOURS[i % COLOURS.len()], dash)
}

/// One curve: a name for the legend and its distribution.
pub struct Series<'a> {
    pub name: &'a str,
    pub dist: &'a Dist,
}

/// One group of bars (e.g. "64 B") with one value per series (`None` = not measured).
pub struct BarGroup<'a> {
    pub label: &'a str,
    pub values: Vec<Option<f64>>,
}

/// Escapes text for an SVG text node or attribute.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short label for a tick value: 0.5, 2, 50, 1k, 20k, 1M.
pub fn tick_label(v: f64) -> String {
    let trim = |x: f64| {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

/// A log10 axis over [lo, hi], widened to whole 1-2-5 steps.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn around(min: f64, max: f64) -> LogAxis {
        let min = min.max(1e-9);
        let max = max.max(min * 1.0001);
        let step_down = |v: f64| {
            let d = 10f64.powf(v.log10().floor());
            [5.0, 2.0, 1.0]
                .iter()
                .map(|m| m * d)
                .find(|s| *s <= v * 1.000001)
                .unwrap_or(d)
        };
        let step_up = |v: f64| {
            let d = 10f64.powf(v.log10().floor());
            [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * d)
                .find(|s| *s >= v * 0.999999)
                .unwrap_or(10.0 * d)
        };
        LogAxis {
            lo: step_down(min),
            hi: step_up(max),
        }
    }

    /// 0..1 along the axis.
    fn frac(&self, v: f64) -> f64 {
        (v.max(1e-12).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
    }

    /// 1-2-5 ticks inside the axis (only decades when the axis spans more than four decades).
    fn ticks(&self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10();
        let mults: &[f64] = if decades > 4.0 {
            &[1.0]
        } else {
            &[1.0, 2.0, 5.0]
        };
        let mut out = Vec::new();
        let mut d = 10f64.powf(self.lo.log10().floor());
        while d <= self.hi * 1.000001 {
            for m in mults {
                let t = m * d;
                if t >= self.lo * 0.999999 && t <= self.hi * 1.000001 {
                    out.push(t);
                }
            }
            d *= 10.0;
        }
        out
    }
}

fn header(out: &mut String, canvas: &Canvas, title: &str) {
    let width = canvas.width;
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{width}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {width} {HEIGHT}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        width / 2.0,
        escape(title)
    );
}

/// Horizontal grid lines and labels of a log y axis.
fn y_axis(out: &mut String, canvas: &Canvas, axis: &LogAxis, label: &str) {
    let (x0, y0, w, h) = canvas.plot_box();
    for t in axis.ticks() {
        let y = y0 + h * (1.0 - axis.frac(t));
        let _ = writeln!(
            out,
            "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 + w,
            x0 - 6.0,
            y + 4.0,
            tick_label(t)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">{}</text>",
        y0 + h / 2.0,
        y0 + h / 2.0,
        escape(label)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#333\"/>"
    );
}

fn legend(out: &mut String, canvas: &Canvas, names: &[&str]) {
    let (x0, y0, w, _) = canvas.plot_box();
    for (i, name) in names.iter().enumerate() {
        let (colour, dash) = style(i);
        let y = y0 + 10.0 + 20.0 * i as f64;
        let x = x0 + w + 14.0;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>\n\
             <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            y - 4.0,
            x + 16.0,
            y - 4.0,
            x + 20.0,
            escape(name)
        );
    }
}

/// Latency percentile curves, one per series; `unit` labels the y axis (e.g. "µs").
pub fn percentile_chart(title: &str, unit: &str, series: &[Series<'_>]) -> String {
    let positions: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            let mut prev = 1.0;
            s.dist
                .points
                .iter()
                .map(|&(p, v)| {
                    prev = odds(p, s.dist.count, prev);
                    (prev, v)
                })
                .collect()
        })
        .collect();
    let all = positions.iter().flatten();
    let (xmax, vmin, vmax) = all.fold((10.0f64, f64::MAX, 0.0f64), |(x, lo, hi), &(px, v)| {
        (x.max(px), lo.min(v), hi.max(v))
    });
    let xaxis = LogAxis {
        lo: 1.0,
        hi: 10f64.powf(xmax.log10().ceil()),
    };
    let yaxis = if vmax > 0.0 {
        LogAxis::around(vmin.max(1e-6), vmax)
    } else {
        LogAxis { lo: 1.0, hi: 10.0 }
    };
    let names: Vec<&str> = series.iter().map(|s| s.name).collect();
    let canvas = Canvas::for_names(&names);
    let mut out = String::new();
    header(&mut out, &canvas, title);
    let (x0, y0, w, h) = canvas.plot_box();
    // x ticks: 0 %, 90 %, 99 %, … at each decade of the odds.
    let mut t = 1.0;
    let mut decade = 0;
    while t <= xaxis.hi * 1.000001 {
        let x = x0 + w * xaxis.frac(t);
        let label = percentile_label(decade);
        decade += 1;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y0:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            y0 + h,
            y0 + h + 16.0
        );
        t *= 10.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile (log of 1/(1−q)); last point = max</text>",
        x0 + w / 2.0,
        HEIGHT - 14.0
    );
    y_axis(&mut out, &canvas, &yaxis, &format!("latency ({unit}, log)"));
    for (i, (s, pts)) in series.iter().zip(&positions).enumerate() {
        let (colour, dash) = style(i);
        let coords: Vec<String> = pts
            .iter()
            .map(|&(px, v)| {
                format!(
                    "{:.1},{:.1}",
                    x0 + w * xaxis.frac(px),
                    y0 + h * (1.0 - yaxis.frac(v))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"series\" data-name=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            escape(s.name),
            coords.join(" ")
        );
        for c in &coords {
            let (cx, cy) = c.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                out,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"2.5\" fill=\"{colour}\"/>"
            );
        }
    }
    legend(&mut out, &canvas, &names);
    out.push_str("</svg>\n");
    out
}

/// The percentile at odds 10^decade: 0 %, 90 %, 99 %, 99.9 %, 99.99 % …
fn percentile_label(decade: usize) -> String {
    match decade {
        0 => "0%".into(),
        1 => "90%".into(),
        d => format!("99.{}%", "9".repeat(d - 2)).replace("99.%", "99%"),
    }
}

/// Bars on a log axis: for each group one bar per series name, labelled with its value.
pub fn bar_chart(title: &str, unit: &str, names: &[&str], groups: &[BarGroup<'_>]) -> String {
    let values = groups.iter().flat_map(|g| g.values.iter().flatten());
    let (vmin, vmax) = values.fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let yaxis = if vmax > 0.0 {
        LogAxis::around((vmin / 2.0).max(vmax * 1e-7), vmax * 1.5)
    } else {
        LogAxis { lo: 1.0, hi: 10.0 }
    };
    let canvas = Canvas::for_names(names);
    let mut out = String::new();
    header(&mut out, &canvas, title);
    y_axis(&mut out, &canvas, &yaxis, &format!("{unit} (log)"));
    let (x0, y0, w, h) = canvas.plot_box();
    let group_w = w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.7) / names.len().max(1) as f64;
    for (gi, g) in groups.iter().enumerate() {
        let gx = x0 + group_w * gi as f64 + group_w * 0.15;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            gx + group_w * 0.35,
            y0 + h + 18.0,
            escape(g.label)
        );
        for (si, v) in g.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let top = y0 + h * (1.0 - yaxis.frac(*v).clamp(0.0, 1.0));
            let x = gx + bar_w * si as f64;
            let _ = writeln!(
                out,
                "<rect class=\"bar\" data-name=\"{}\" data-group=\"{}\" x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                escape(names.get(si).copied().unwrap_or("?")),
                escape(g.label),
                bar_w - 2.0,
                (y0 + h - top).max(0.0),
                style(si).0,
                x + bar_w / 2.0 - 1.0,
                top - 4.0,
                tick_label(*v)
            );
        }
    }
    legend(&mut out, &canvas, names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal well-formedness check: every tag closes in order, attributes are quoted, and
    /// the root is `svg`. Returns the element names in document order.
    fn elements(doc: &str) -> Vec<String> {
        let body = doc
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .expect("XML declaration");
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            check_text(text);
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "closing {name}");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().expect("tag name").to_owned();
            // Attributes: name="value" pairs only.
            let attrs = tag[name.len()..].trim();
            let mut a = attrs;
            while !a.is_empty() {
                let eq = a.find("=\"").expect("attribute without =\"");
                let close = a[eq + 2..].find('"').expect("unquoted attribute") + eq + 2;
                a = a[close + 1..].trim_start();
            }
            if stack.is_empty() {
                assert_eq!(name, "svg", "root element");
            }
            names.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(rest.trim().is_empty());
        names
    }

    /// Text between tags holds no `>` and only the entities `escape` writes.
    fn check_text(text: &str) {
        assert!(!text.contains('>'), "stray > in {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare & in {text:?}"
            );
        }
    }

    #[test]
    fn percentile_chart_is_well_formed_with_one_curve_per_series() {
        let a = Dist::parse("50:420,90:600,99:900,99.9:1500,100:2100", 5000).unwrap();
        let b = Dist::parse("50:30,90:40,99:95,100:300", 300).unwrap();
        let doc = percentile_chart(
            "agreed <latency> & more",
            "µs",
            &[
                Series {
                    name: "Corosync 3",
                    dist: &a,
                },
                Series {
                    name: "rotor",
                    dist: &b,
                },
            ],
        );
        let names = elements(&doc);
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 2);
        assert!(doc.contains("data-name=\"Corosync 3\""));
        assert!(doc.contains("data-name=\"rotor\""));
        assert!(doc.contains("agreed &lt;latency&gt; &amp; more"));
        // One marker per point, and the 99.9 % tick exists since a = 5000 samples.
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 9);
        assert!(doc.contains(">99.9%<"));
    }

    #[test]
    fn bar_chart_is_well_formed_with_each_bar() {
        let doc = bar_chart(
            "throughput",
            "msgs/s",
            &["Corosync 3", "rotor"],
            &[
                BarGroup {
                    label: "64 B",
                    values: vec![Some(23_800.0), Some(2_000_000.0)],
                },
                BarGroup {
                    label: "1 KB",
                    values: vec![Some(19_600.0), None],
                },
            ],
        );
        let names = elements(&doc);
        // Background, plot frame, three bars (the legend uses lines).
        assert_eq!(names.iter().filter(|n| *n == "rect").count(), 1 + 1 + 3);
        assert!(doc.contains("data-name=\"rotor\" data-group=\"64 B\""));
        assert!(!doc.contains("data-name=\"rotor\" data-group=\"1 KB\""));
        assert!(doc.contains(">2M<"));
    }

    #[test]
    fn many_series_get_dashes_and_the_legend_fits() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(2), "99%");
        assert_eq!(percentile_label(5), "99.999%");
        assert_eq!(style(9).0, style(1).0);
        assert!(style(9).1.contains("dasharray") && style(1).1.is_empty());
        let long = "x".repeat(60);
        assert!(Canvas::for_names(&[&long]).width > Canvas::for_names(&["a"]).width);
    }

    #[test]
    fn ticks_and_labels() {
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(1500.0), "1.5k");
        assert_eq!(tick_label(2_000_000.0), "2M");
        let axis = LogAxis::around(3.0, 900.0);
        assert_eq!((axis.lo, axis.hi), (2.0, 1000.0));
        assert_eq!(
            axis.ticks(),
            [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        let wide = LogAxis::around(0.1, 1e6);
        assert_eq!(wide.ticks().len(), 8, "decades only over wide ranges");
    }
}
