//! Service-level objectives: `--slo 'p99<50ms,errors<1%,rate>1000'` checked against a report.
//!
//! Terms: `pNN` / `pNN.N` (the main latency histogram; units `us`, `ms`, `s`), `max`,
//! `mean`, `errors` (percent of tries), `rate` (units of work per second), `cpu` (server CPU
//! µs per unit of work). Operators `<`, `<=`, `>`, `>=`.

use anyhow::{bail, Context};

use crate::report::Report;

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A latency quantile in 0..=1.
    Quantile(f64),
    Max,
    Mean,
    ErrorPct,
    Rate,
    CpuPerUnit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One objective: the metric, the comparison, and the bound (µs for latencies).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

pub fn parse(spec: &str) -> anyhow::Result<Vec<Objective>> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(term: &str) -> anyhow::Result<Objective> {
    let (pos, op, len) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|o| term.find(o).map(|p| (p, *o, o.len())))
        .with_context(|| format!("SLO term {term:?} has no <, <=, > or >="))?;
    let op = match op {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        _ => Op::Ge,
    };
    let name = term[..pos].trim().to_ascii_lowercase();
    let value = term[pos + len..].trim();
    let metric = match name.as_str() {
        "max" => Metric::Max,
        "mean" => Metric::Mean,
        "errors" | "error" | "loss" => Metric::ErrorPct,
        "rate" => Metric::Rate,
        "cpu" => Metric::CpuPerUnit,
        p if p.starts_with('p') => {
            let n: f64 = p[1..]
                .parse()
                .with_context(|| format!("SLO term {term:?}: bad percentile"))?;
            if !(0.0..=100.0).contains(&n) {
                bail!("SLO term {term:?}: percentile must be 0..100");
            }
            Metric::Quantile(n / 100.0)
        }
        _ => {
            bail!("SLO term {term:?}: unknown metric {name:?} (pNN, max, mean, errors, rate, cpu)")
        }
    };
    let bound = match metric {
        Metric::Quantile(_) | Metric::Max | Metric::Mean => parse_duration_us(value),
        Metric::ErrorPct => value.strip_suffix('%').unwrap_or(value).trim().parse().ok(),
        Metric::Rate => value
            .strip_suffix("/s")
            .unwrap_or(value)
            .trim()
            .parse()
            .ok(),
        Metric::CpuPerUnit => value
            .strip_suffix("us")
            .unwrap_or(value)
            .trim()
            .parse()
            .ok(),
    }
    .with_context(|| format!("SLO term {term:?}: bad value {value:?}"))?;
    Ok(Objective {
        text: term.to_string(),
        metric,
        op,
        bound,
    })
}

/// `50ms`, `250us`, `1.5s` (a bare number is ms) to µs.
fn parse_duration_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix("us").or_else(|| v.strip_suffix("µs")) {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        (v, 1e3)
    };
    num.trim().parse::<f64>().ok().map(|n| n * scale)
}

/// The measured value of an objective's metric, if the report has it.
pub fn measure(report: &Report, metric: &Metric) -> Option<f64> {
    let lat = report.main_latency().map(|(_, l)| l);
    match metric {
        Metric::Quantile(q) => lat.and_then(|l| l.quantile_us(*q).ok()).map(|v| v as f64),
        Metric::Max => lat.map(|l| l.max_us as f64),
        Metric::Mean => lat.map(|l| l.mean_us),
        Metric::ErrorPct => Some(report.totals.error_pct),
        Metric::Rate => Some(report.totals.rate),
        Metric::CpuPerUnit => report.server.as_ref().and_then(|s| s.cpu_us_per_unit),
    }
}

/// The objectives the report breaches, each with a line saying why. A metric the report
/// lacks (no latency recorded, no server sampled) is a breach: nothing was shown to hold.
pub fn breaches(report: &Report, objectives: &[Objective]) -> Vec<String> {
    objectives
        .iter()
        .filter_map(|o| {
            let Some(v) = measure(report, &o.metric) else {
                return Some(format!("{}: not measured in this run", o.text));
            };
            let ok = match o.op {
                Op::Lt => v < o.bound,
                Op::Le => v <= o.bound,
                Op::Gt => v > o.bound,
                Op::Ge => v >= o.bound,
            };
            (!ok).then(|| format!("{}: measured {}", o.text, show(&o.metric, v)))
        })
        .collect()
}

fn show(metric: &Metric, v: f64) -> String {
    match metric {
        Metric::Quantile(_) | Metric::Max | Metric::Mean => format!("{:.3}ms", v / 1e3),
        Metric::ErrorPct => format!("{v:.3}%"),
        Metric::Rate => format!("{v:.1}/s"),
        Metric::CpuPerUnit => format!("{v:.2}us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{new_histogram, Latency};

    #[test]
    fn parses_terms_and_units() {
        let o = parse("p99<50ms, p99.9 <= 250us ,errors<1%,rate>=1000,max<2s,cpu<20").unwrap();
        assert_eq!(o.len(), 6);
        assert_eq!(o[0].metric, Metric::Quantile(0.99));
        assert_eq!((o[0].op, o[0].bound), (Op::Lt, 50_000.0));
        assert!(matches!(o[1].metric, Metric::Quantile(q) if (q - 0.999).abs() < 1e-12));
        assert_eq!((o[1].op, o[1].bound), (Op::Le, 250.0));
        assert_eq!((o[2].metric.clone(), o[2].bound), (Metric::ErrorPct, 1.0));
        assert_eq!((o[3].op, o[3].bound), (Op::Ge, 1000.0));
        assert_eq!(o[4].bound, 2e6);
        assert_eq!(
            (o[5].metric.clone(), o[5].bound),
            (Metric::CpuPerUnit, 20.0)
        );
    }

    #[test]
    fn rejects_bad_terms() {
        for bad in ["p99", "p99<fast", "latency<5ms", "p150<1ms", "errors<x%"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn breaches_are_reported() {
        let mut h = new_histogram();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let mut r = Report::new("api", "t", "request");
        r.latencies
            .insert("all".into(), Latency::from_histogram(&h).unwrap());
        r.totals.ops = 990;
        r.totals.errors = 10;
        r.duration_s = 1.0;
        r.finish_totals();
        assert!(breaches(&r, &parse("p99<150ms,errors<=1%,rate>900").unwrap()).is_empty());
        let b = breaches(&r, &parse("p50<10ms,errors<0.5%,cpu<5").unwrap());
        assert_eq!(b.len(), 3, "{b:?}");
        assert!(b[0].starts_with("p50<10ms: measured 50."), "{b:?}");
        assert!(b[2].contains("not measured"), "{b:?}");
    }
}
