//! The picture an operator looks at: a self-contained SVG of the run, one
//! column per second — requests per second as grey bars (right axis), p50
//! and p99 latency as lines (left axis), and a red mark over every second
//! that had errors (its count in the tooltip).

use std::fmt::Write as _;

use crate::report::Tick;

const W: f64 = 960.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 45.0;

/// 1, 2 or 5 times a power of ten, at least `x`: axis maxima read easily.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(title: &str, ticks: &[Tick]) -> String {
    let n = ticks.len().max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let max_ms = nice_ceiling(ticks.iter().map(|t| t.p99_ms).fold(0.0, f64::max));
    let max_rate = nice_ceiling(ticks.iter().map(|t| t.requests as f64).fold(0.0, f64::max));
    let x = |second: f64| LEFT + second / n * plot_w;
    let y_ms = |ms: f64| TOP + plot_h - ms / max_ms * plot_h;
    let y_rate = |r: f64| TOP + plot_h - r / max_rate * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        esc(title)
    );
    // Legend.
    let legend = [
        ("#c8c8c8", "requests/s (right axis)"),
        ("#1f77b4", "p50 latency"),
        ("#d62728", "p99 latency"),
        ("#ff0000", "▼ second with errors"),
    ];
    for (i, (color, label)) in legend.iter().enumerate() {
        let lx = LEFT + i as f64 * 200.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="30" width="12" height="12" fill="{color}"/><text x="{}" y="41">{label}</text>"#,
            lx + 16.0
        );
    }
    // Grid and axes.
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let gy = TOP + plot_h - f * plot_h;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{gy}" x2="{}" y2="{gy}" stroke="#eeeeee"/><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0,
            trim_number(f * max_ms),
            W - RIGHT + 6.0,
            gy + 4.0,
            trim_number(f * max_rate),
        );
    }
    let step = ((n / 10.0).ceil() as usize).max(1);
    for second in (0..=ticks.len()).step_by(step) {
        let gx = x(second as f64);
        let _ = writeln!(
            s,
            r#"<text x="{gx}" y="{}" text-anchor="middle">{second}</text>"#,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the run (by intended send time)</text>"#,
        LEFT + plot_w / 2.0,
        H - 8.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency, ms</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" transform="rotate(90 {} {})" text-anchor="middle">requests per second</text>"#,
        W - 16.0,
        TOP + plot_h / 2.0,
        W - 16.0,
        TOP + plot_h / 2.0
    );
    // Request rate bars.
    let bar_w = (plot_w / n * 0.8).max(0.5);
    for t in ticks {
        let top = y_rate(t.requests as f64);
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{top:.1}" width="{bar_w:.1}" height="{:.1}" fill="#c8c8c8"><title>second {}: {} requests</title></rect>"##,
            x(t.second as f64),
            TOP + plot_h - top,
            t.second,
            t.requests
        );
    }
    // Latency lines through the middle of each second.
    for (color, pick) in [
        ("#1f77b4", (|t: &Tick| t.p50_ms) as fn(&Tick) -> f64),
        ("#d62728", |t: &Tick| t.p99_ms),
    ] {
        let points: Vec<String> = ticks
            .iter()
            .filter(|t| t.requests > 0)
            .map(|t| format!("{:.1},{:.1}", x(t.second as f64 + 0.5), y_ms(pick(t))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
    // Errors.
    for t in ticks.iter().filter(|t| t.errors > 0) {
        let cx = x(t.second as f64 + 0.5);
        let _ = writeln!(
            s,
            r##"<path d="M{:.1},{:.1} l-5,-8 h10 z" fill="#ff0000"><title>second {}: {} errors</title></path>"##,
            cx,
            TOP - 1.0,
            t.second,
            t.errors
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888888"/>"##
    );
    s.push_str("</svg>\n");
    s
}

fn trim_number(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(0.07), 0.1);
    }

    #[test]
    fn draws_rate_latency_and_errors() {
        let ticks = vec![
            Tick {
                second: 0,
                requests: 100,
                errors: 0,
                p50_ms: 1.0,
                p99_ms: 4.0,
            },
            Tick {
                second: 1,
                requests: 90,
                errors: 3,
                p50_ms: 2.0,
                p99_ms: 30.0,
            },
        ];
        let svg = svg("a <run>", &ticks);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;run&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("second 1: 3 errors"));
        assert!(!svg.contains("second 0: 0 errors"));
        // An empty run still draws axes.
        assert!(super::svg("empty", &[]).contains("</svg>"));
    }
}
