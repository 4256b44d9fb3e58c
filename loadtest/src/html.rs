//! One self-contained HTML page per report: a summary table and inline SVG plots (latency
//! CDF, throughput, loss, server CPU and RSS over time). No scripts, no external resources.

use std::fmt::Write;

use crate::report::{fmt_num, table_rows, Report};

const W: f64 = 640.0;
const H: f64 = 240.0;
/// Plot margins: left for the y labels, bottom for the x labels.
const ML: f64 = 60.0;
const MB: f64 = 30.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// The page for one report.
pub fn render(r: &Report) -> String {
    let mut page = String::new();
    let title = format!("loadtest {} → {}", r.scenario, r.target);
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:14px sans-serif;margin:2em;max-width:720px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
         td:first-child{{text-align:left}}svg{{display:block;margin:1em 0}}</style></head><body>\
         <h1>{t}</h1><p>{schema} · started {start} (unix) · {dur:.1} s{partial}</p>",
        t = esc(&title),
        schema = esc(&r.schema),
        start = r.started_at,
        dur = r.duration_s,
        partial = if r.partial { " · <b>partial</b>" } else { "" },
    );
    page += "<h2>Summary</h2><table>";
    for (label, v) in table_rows(r) {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&label),
            fmt_num(v)
        );
    }
    page += "</table>";
    if !r.latencies.is_empty() {
        page += "<h2>Latency by operation</h2><table><tr><th>operation</th><th>count</th>\
                 <th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>";
        for (name, l) in &r.latencies {
            let ms = |us: u64| format!("{:.3}", us as f64 / 1e3);
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                l.count,
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us)
            );
        }
        page += "</table>";
        page += &latency_cdf(r);
    }
    let t: Vec<f64> = r.series.iter().map(|s| s.t as f64).collect();
    let ops: Vec<f64> = r.series.iter().map(|s| s.ops as f64).collect();
    let errs: Vec<f64> = r.series.iter().map(|s| s.errors as f64).collect();
    page += &line_plot(
        &format!("Throughput ({}s/s) and errors/s", r.unit),
        &t,
        &[("ops/s", &ops), ("errors/s", &errs)],
        "s",
    );
    if r.series.iter().any(|s| s.expected.is_some()) {
        // By the second units were sent in; a second with nothing sent plots as 0 %.
        let loss: Vec<f64> = r
            .series
            .iter()
            .map(|s| s.loss_pct().unwrap_or(0.0))
            .collect();
        page += &line_plot(
            &format!("Loss over time (% of {}s sent each second)", r.unit),
            &t,
            &[("loss %", &loss)],
            "s",
        );
    }
    if r.series.iter().any(|s| s.server_cpu_s.is_some()) {
        let cpu: Vec<f64> = r
            .series
            .iter()
            .map(|s| s.server_cpu_s.unwrap_or(0.0) * 100.0)
            .collect();
        let rss: Vec<f64> = r
            .series
            .iter()
            .map(|s| s.server_rss_bytes.unwrap_or(0) as f64 / 1048576.0)
            .collect();
        page += &line_plot("Server CPU (% of one core)", &t, &[("CPU %", &cpu)], "s");
        page += &line_plot("Server RSS (MiB)", &t, &[("RSS MiB", &rss)], "s");
    }
    if !r.errors.is_empty() {
        page += "<h2>Errors</h2><table>";
        for (k, v) in &r.errors {
            let _ = write!(page, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
        }
        page += "</table>";
    }
    if !r.notes.is_empty() {
        page += "<h2>Notes</h2><ul>";
        for n in &r.notes {
            let _ = write!(page, "<li>{}</li>", esc(n));
        }
        page += "</ul>";
    }
    page += "<h2>Parameters</h2><table>";
    for (k, v) in &r.params {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(k),
            esc(&v.to_string())
        );
    }
    page += "</table></body></html>\n";
    page
}

/// Latency CDF: x = latency on a log scale, y = share of operations at or below it.
fn latency_cdf(r: &Report) -> String {
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (name, lat) in &r.latencies {
        let Ok(h) = lat.histogram() else { continue };
        if h.is_empty() {
            continue;
        }
        let total = h.len() as f64;
        let mut acc = 0u64;
        let points = h
            .iter_recorded()
            .map(|v| {
                acc += v.count_at_value();
                ((v.value_iterated_to().max(1)) as f64, acc as f64 / total)
            })
            .collect();
        curves.push((name.clone(), points));
    }
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold((f64::MAX, 1.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lx0, lx1) = (lo.max(1.0).log10().floor(), hi.log10().ceil().max(1.0));
    let sx = |x: f64| ML + (x.log10() - lx0) / (lx1 - lx0).max(1e-9) * (W - ML - 10.0);
    let sy = |y: f64| 10.0 + (1.0 - y) * (H - 10.0 - MB);
    let mut svg = svg_open("Latency CDF (log scale)");
    let mut d = lx0;
    while d <= lx1 {
        let x = sx(10f64.powf(d));
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"10\" x2=\"{x:.1}\" y2=\"{b}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"middle\">{l}</text>",
            b = H - MB,
            ty = H - MB + 14.0,
            l = us_label(10f64.powf(d))
        );
        d += 1.0;
    }
    for y in [0.0, 0.5, 0.9, 0.99, 1.0] {
        svg += &y_grid(sy(y), &y.to_string());
    }
    for (i, (name, points)) in curves.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        svg += &polyline(&path, COLORS[i % COLORS.len()]);
        svg += &legend(i, name);
    }
    svg + "</svg>"
}

/// A time-series plot of one or more lines sharing the x axis.
fn line_plot(title: &str, xs: &[f64], lines: &[(&str, &[f64])], x_unit: &str) -> String {
    let mut svg = svg_open(title);
    let x_max = xs.iter().copied().fold(1.0f64, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|(_, ys)| ys.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let sx = |x: f64| ML + x / x_max * (W - ML - 10.0);
    let sy = |y: f64| 10.0 + (1.0 - y / y_max) * (H - 10.0 - MB);
    for i in 0..=4 {
        let y = y_max * i as f64 / 4.0;
        svg += &y_grid(sy(y), &fmt_num(Some(y)));
        let x = x_max * i as f64 / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{px:.1}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"middle\">{l}{x_unit}</text>",
            px = sx(x),
            ty = H - MB + 14.0,
            l = fmt_num(Some(x))
        );
    }
    for (i, (name, ys)) in lines.iter().enumerate() {
        let path: Vec<String> = xs
            .iter()
            .zip(ys.iter())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        svg += &polyline(&path, COLORS[i % COLORS.len()]);
        svg += &legend(i, name);
    }
    svg + "</svg>"
}

/// A horizontal grid line at `py` with its label on the left.
fn y_grid(py: f64, label: &str) -> String {
    format!(
        "<line x1=\"{ML}\" y1=\"{py:.1}\" x2=\"{W}\" y2=\"{py:.1}\" stroke=\"#eee\"/>\
         <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"11\" text-anchor=\"end\">{label}</text>",
        tx = ML - 4.0,
        ty = py + 4.0
    )
}

fn svg_open(title: &str) -> String {
    format!(
        "<h3>{t}</h3><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\">\
         <rect x=\"{ML}\" y=\"10\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>",
        t = esc(title),
        pw = W - ML - 10.0,
        ph = H - 10.0 - MB,
    )
}

fn polyline(points: &[String], color: &str) -> String {
    format!(
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
        points.join(" ")
    )
}

fn legend(i: usize, name: &str) -> String {
    let y = 24.0 + 14.0 * i as f64;
    format!(
        "<text x=\"{x}\" y=\"{y}\" font-size=\"11\" fill=\"{c}\">{n}</text>",
        x = ML + 8.0,
        c = COLORS[i % COLORS.len()],
        n = esc(name)
    )
}

fn us_label(us: f64) -> String {
    if us >= 1e6 {
        format!("{}s", us / 1e6)
    } else if us >= 1e3 {
        format!("{}ms", us / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_histogram, Latency, Sample, ServerUsage};

    #[test]
    fn page_is_self_contained_with_plots_and_table() {
        let mut r = Report::new("chat", "127.0.0.1:5222", "routed message");
        let mut h = new_histogram();
        for v in [100, 200, 5000, 90_000] {
            h.record(v).unwrap();
        }
        r.latencies
            .insert("all".into(), Latency::from_histogram(&h).unwrap());
        r.series = (0..5)
            .map(|t| Sample {
                t,
                ops: 100 * t as u64,
                server_cpu_s: Some(0.5),
                server_rss_bytes: Some(10 << 20),
                ..Sample::default()
            })
            .collect();
        r.server = Some(ServerUsage {
            pid: 1,
            cpu_s: 2.0,
            ..ServerUsage::default()
        });
        r.notes.push("a <note> & more".into());
        r.totals.ops = 1000;
        r.duration_s = 5.0;
        r.finish_totals();
        let page = render(&r);
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.trim_end().ends_with("</html>"));
        assert_eq!(page.matches("<svg").count(), 4, "CDF, throughput, CPU, RSS");
        assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
        assert!(page.contains("Latency CDF"));
        assert!(page.contains("routed message"));
        assert!(page.contains("a &lt;note&gt; &amp; more"));
        assert!(!page.contains("<script"), "no scripts");
        assert!(!page.contains("src=\"http"), "no external resources");
        assert!(!page.contains("NaN"));
        assert!(
            !page.contains("Loss over time"),
            "no loss plot when loss is unknown"
        );

        // With per-second loss: a fifth plot, loss in percent (here 0 % then 25 %).
        for (i, s) in r.series.iter_mut().enumerate() {
            s.expected = Some(100);
            s.lost = Some(if i < 2 { 0 } else { 25 });
        }
        let page = render(&r);
        assert_eq!(
            page.matches("<svg").count(),
            5,
            "CDF, throughput, loss, CPU, RSS"
        );
        assert!(page.contains("<h3>Loss over time (% of routed messages sent each second)</h3>"));
        let plot = &page[page.find("Loss over time").unwrap()..];
        let plot = &plot[..plot.find("</svg>").unwrap()];
        assert!(plot.contains("<polyline") && plot.contains(">loss %<"));
        // y axis up to 25 % × 1.1: the top grid label.
        assert!(plot.contains(">27.5<"), "{plot}");
        assert!(!page.contains("NaN"));
    }
}
