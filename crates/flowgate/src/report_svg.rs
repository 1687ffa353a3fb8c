//! Line charts as SVG for `flowgate report`: lines over time, an optional band (a
//! forecast's interval) and marks (anomalies), with axes labelled in UTC and the unit.
//! Hand-written: a polyline and a few labels are all a report needs, and no chart crate
//! is then built into the binary.

use std::fmt::Write;

/// One line: its name and its points (Unix seconds, value).
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A band around a line: (t, low, high).
pub struct Band {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A chart.
pub struct Chart<'a> {
    pub title: &'a str,
    pub unit: &'a str,
    pub lines: Vec<Line>,
    pub band: Option<Band>,
    /// Times to mark (anomalies), with what to say on hover.
    pub marks: Vec<(f64, String)>,
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Text made safe for XML (and so for HTML).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for an axis: short.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A time for an axis: `MM-DD HH:MM` UTC.
fn when(t: f64) -> String {
    let secs = t as i64;
    jiff::Timestamp::from_second(secs)
        .map(|ts| ts.strftime("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

impl Chart<'_> {
    /// The chart as an `<svg>` element; a note instead of axes when there is no point.
    pub fn svg(&self) -> String {
        let mut ts: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .collect();
        let mut vs: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .collect();
        if let Some(b) = &self.band {
            ts.extend(b.points.iter().map(|p| p.0));
            vs.extend(b.points.iter().flat_map(|p| [p.1, p.2]));
        }
        ts.retain(|t| t.is_finite());
        vs.retain(|v| v.is_finite());
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\"><title>{}</title>\
             <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\
             <text x=\"{LEFT}\" y=\"18\" font-family=\"sans-serif\" font-size=\"13\" font-weight=\"bold\">{} ({})</text>",
            escape(self.title),
            escape(self.title),
            escape(self.unit)
        );
        if ts.is_empty() || vs.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#666666\">no data in the window</text></svg>",
                W / 2.0 - 60.0,
                H / 2.0
            );
            return s;
        }
        let (t0, t1) = (
            ts.iter().copied().fold(f64::INFINITY, f64::min),
            ts.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let v0 = vs.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let mut v1 = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v1 <= v0 {
            v1 = v0 + 1.0;
        }
        let span_t = (t1 - t0).max(1.0);
        let x = |t: f64| LEFT + (t - t0) / span_t * (W - LEFT - RIGHT);
        let y = |v: f64| TOP + (1.0 - (v - v0) / (v1 - v0)) * (H - TOP - BOTTOM);
        // Axes, gridlines and labels.
        for i in 0..=4 {
            let v = v0 + (v1 - v0) * i as f64 / 4.0;
            let _ = write!(
                s,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/>\
                 <text x=\"{}\" y=\"{:.1}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                y(v) + 3.0,
                tick(v),
                yy = y(v)
            );
        }
        for i in 0..=3 {
            let t = t0 + span_t * i as f64 / 3.0;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                x(t),
                H - BOTTOM + 16.0,
                when(t)
            );
        }
        if let Some(b) = &self.band {
            let pts: Vec<&(f64, f64, f64)> = b
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite() && p.2.is_finite())
                .collect();
            if !pts.is_empty() {
                let mut d = String::new();
                for p in &pts {
                    let _ = write!(d, "{:.1},{:.1} ", x(p.0), y(p.2));
                }
                for p in pts.iter().rev() {
                    let _ = write!(d, "{:.1},{:.1} ", x(p.0), y(p.1));
                }
                let _ = write!(
                    s,
                    "<polygon points=\"{}\" fill=\"#1f77b4\" fill-opacity=\"0.15\" stroke=\"none\"><title>{}</title></polygon>",
                    d.trim_end(),
                    escape(&b.name)
                );
            }
        }
        for (i, l) in self.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            for (t, v) in l
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
            {
                let _ = write!(d, "{:.1},{:.1} ", x(*t), y(*v));
            }
            let _ = write!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"><title>{}</title></polyline>\
                 <text x=\"{:.1}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"10\" fill=\"{colour}\">{}</text>",
                d.trim_end(),
                escape(&l.name),
                LEFT + 160.0 * i as f64,
                H - 6.0,
                escape(&l.name)
            );
        }
        for (t, what) in &self.marks {
            if !(t.is_finite() && *t >= t0 && *t <= t1) {
                continue;
            }
            let _ = write!(
                s,
                "<line class=\"anomaly\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#d62728\" stroke-dasharray=\"3,3\"><title>{}</title></line>",
                H - BOTTOM,
                escape(what),
                xx = x(*t)
            );
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_well_formed_svg_with_its_parts() {
        let c = Chart {
            title: "Traffic <all> & more",
            unit: "requests/s",
            lines: vec![Line {
                name: "chat".into(),
                points: vec![(0.0, 1.0), (60.0, 2.0), (120.0, f64::NAN), (180.0, 3.0)],
            }],
            band: Some(Band {
                name: "80%".into(),
                points: vec![(180.0, 2.0, 4.0), (240.0, 2.5, 4.5)],
            }),
            marks: vec![(60.0, "spike \"up\"".into()), (9999.0, "outside".into())],
        };
        let svg = c.svg();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed");
        let count = |name: &str| doc.descendants().filter(|n| n.has_tag_name(name)).count();
        assert_eq!(count("polyline"), 1);
        assert_eq!(count("polygon"), 1);
        assert_eq!(
            doc.descendants()
                .filter(|n| n.attribute("class") == Some("anomaly"))
                .count(),
            1
        );
        assert!(svg.contains("Traffic &lt;all&gt; &amp; more"));
        let empty = Chart {
            title: "Spend",
            unit: "USD/hour",
            lines: vec![],
            band: None,
            marks: vec![],
        }
        .svg();
        assert!(empty.contains("no data in the window"));
        roxmltree::Document::parse(&empty).expect("well-formed");
    }
}
