//! The report: a stable JSON schema (`switchboard-loadtest/1`), exact merges, ratio tables.
//!
//! Latencies are HDR histograms in microseconds (1 µs to 60 s, 3 significant digits)
//! serialised with hdrhistogram's V2 + DEFLATE format and base64, so `merge` adds the
//! recorded counts themselves: a merged report's percentiles equal those of one run over
//! the union of the samples. The summary fields beside each histogram are derived from it
//! and recomputed after a merge.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The schema tag; bump the number on any incompatible change.
pub const SCHEMA: &str = "switchboard-loadtest/1";

/// Highest latency recorded, µs (60 s: longer is a timeout, counted as an error).
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A new latency histogram in µs (3 significant digits: 0.1 % resolution).
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// One run (or the merge of several) of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: String,
    pub scenario: String,
    pub target: String,
    /// Unix seconds at the start.
    pub started_at: u64,
    pub duration_s: f64,
    /// Ended early (Ctrl-C, the server went away, a fatal error): the numbers cover what ran.
    pub partial: bool,
    /// What one unit of work is: `request`, `routed message`, `relayed packet`.
    pub unit: String,
    /// The run's settings, as given.
    pub params: BTreeMap<String, serde_json::Value>,
    pub totals: Totals,
    /// Sampled from `/proc/PID` when `--server-pid` was given.
    pub server: Option<ServerUsage>,
    /// Latency histograms by operation.
    pub latencies: BTreeMap<String, Latency>,
    /// One sample per second.
    pub series: Vec<Sample>,
    /// Scenario-specific counters (logins, lost messages, idle connections …), summed on merge.
    pub counters: BTreeMap<String, u64>,
    /// Errors by kind, summed on merge.
    pub errors: BTreeMap<String, u64>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Units of work done (requests answered, messages delivered, packets relayed).
    pub ops: u64,
    pub errors: u64,
    /// ops per second over the measured duration.
    pub rate: f64,
    /// errors / (ops + errors), in percent.
    pub error_pct: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerUsage {
    pub pid: u32,
    /// CPU seconds (user + system, all threads) the server used during the measured run.
    pub cpu_s: f64,
    /// Of `cpu_s`, the kernel's (system time): syscalls and, on loopback, the receivers'
    /// packet delivery run on the sender's CPU. Absent in reports from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_cpu_s: Option<f64>,
    pub rss_start_bytes: u64,
    pub rss_max_bytes: u64,
    /// Server CPU µs per unit of work: what compares fairly on a shared machine.
    pub cpu_us_per_unit: Option<f64>,
    /// Units of work per server CPU second.
    pub units_per_cpu_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// base64 of the V2 + DEFLATE serialised histogram (µs).
    pub hdr: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub t: u32,
    pub ops: u64,
    pub errors: u64,
    /// Server CPU seconds used in this second (1.0 = one core busy).
    pub server_cpu_s: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    /// Clients connected at the end of this second.
    pub clients: u32,
    /// Units (messages, packets) sent in this second that should have arrived, where the
    /// scenario knows it (chat, turn, conference); absent otherwise and in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// How many of this second's `expected` never arrived (by the send time they carry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

impl Sample {
    /// Loss in percent of what this second should have delivered (None: not known, or
    /// nothing was expected).
    pub fn loss_pct(&self) -> Option<f64> {
        match (self.expected, self.lost) {
            (Some(e), Some(l)) if e > 0 => Some(l as f64 * 100.0 / e as f64),
            _ => None,
        }
    }
}

/// Fills `expected` and `lost` of each sample from counts by send second: `expected[t]`
/// units were sent in second `t` (the sample whose `t` it is: the second ending at `t` s)
/// and `arrived[t]` of them arrived. Lost is never negative (duplicates and packets from
/// before a receiver's first one are not negative loss). Seconds past the last sample
/// (sent after its tick, before the clients stopped) count in the last sample, seconds
/// before the first in the first, so the series adds up to the whole run.
pub fn fill_loss(series: &mut [Sample], expected: &[u64], arrived: &[u64]) {
    let (Some(first), Some(last)) = (
        series.iter().map(|s| s.t).min(),
        series.iter().map(|s| s.t).max(),
    ) else {
        return;
    };
    let len = expected.len().max(arrived.len());
    let mut by_t: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for i in 0..len {
        let t = (i.min(u32::MAX as usize) as u32).clamp(first, last);
        let e = by_t.entry(t).or_default();
        e.0 += expected.get(i).copied().unwrap_or(0);
        e.1 += arrived.get(i).copied().unwrap_or(0);
    }
    for s in series.iter_mut() {
        let (e, a) = by_t.remove(&s.t).unwrap_or_default();
        s.expected = Some(e);
        s.lost = Some(e.saturating_sub(a));
    }
    // A second with no sample of its own (the run skipped a tick): into the next one.
    for (t, (e, a)) in by_t {
        if let Some(s) = series.iter_mut().find(|s| s.t >= t) {
            s.expected = Some(s.expected.unwrap_or(0) + e);
            s.lost = Some(s.lost.unwrap_or(0) + e.saturating_sub(a));
        }
    }
}

impl Latency {
    /// The summary and serialised form of a histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> anyhow::Result<Self> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .map_err(|e| anyhow::anyhow!("serialising a histogram: {e:?}"))?;
        Ok(Self {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            hdr: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    pub fn histogram(&self) -> anyhow::Result<Histogram<u64>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr)
            .context("latency histogram is not base64")?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("latency histogram does not decode: {e:?}"))
    }

    /// The value at a quantile in 0..=1, from the histogram itself.
    pub fn quantile_us(&self, q: f64) -> anyhow::Result<u64> {
        Ok(self.histogram()?.value_at_quantile(q))
    }
}

impl Report {
    pub fn new(scenario: &str, target: &str, unit: &str) -> Self {
        Self {
            schema: SCHEMA.to_string(),
            scenario: scenario.to_string(),
            target: target.to_string(),
            started_at: 0,
            duration_s: 0.0,
            partial: false,
            unit: unit.to_string(),
            params: BTreeMap::new(),
            totals: Totals::default(),
            server: None,
            latencies: BTreeMap::new(),
            series: Vec::new(),
            counters: BTreeMap::new(),
            errors: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a loadtest report", path.display()))?;
        if report.schema != SCHEMA {
            bail!(
                "{}: schema {:?}, this loadtest reads {SCHEMA:?}",
                path.display(),
                report.schema
            );
        }
        Ok(report)
    }

    pub fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Recomputes the derived totals (rate, error share, CPU per unit) from the raw ones.
    pub fn finish_totals(&mut self) {
        let t = &mut self.totals;
        t.rate = if self.duration_s > 0.0 {
            t.ops as f64 / self.duration_s
        } else {
            0.0
        };
        let tried = t.ops + t.errors;
        t.error_pct = if tried > 0 {
            100.0 * t.errors as f64 / tried as f64
        } else {
            0.0
        };
        let ops = t.ops;
        if let Some(s) = &mut self.server {
            s.cpu_us_per_unit = (ops > 0).then(|| s.cpu_s * 1e6 / ops as f64);
            s.units_per_cpu_s = (s.cpu_s > 0.0).then(|| ops as f64 / s.cpu_s);
        }
    }

    /// The latency summary the SLO and the tables use: `all` if present, else the first.
    pub fn main_latency(&self) -> Option<(&str, &Latency)> {
        self.latencies
            .get_key_value("all")
            .or_else(|| self.latencies.iter().next())
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Merges reports of the same scenario from several load agents run at the same time
/// against one server: work, errors, counters and histograms add up exactly; the
/// duration is the longest; the server's usage (one server, sampled by each agent) is the
/// largest seen, not a sum.
pub fn merge(reports: &[Report]) -> anyhow::Result<Report> {
    let Some(first) = reports.first() else {
        bail!("nothing to merge");
    };
    let mut out = first.clone();
    out.notes
        .push(format!("merged from {} reports", reports.len()));
    let mut hists: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (name, lat) in &first.latencies {
        hists.insert(name.clone(), lat.histogram()?);
    }
    for r in &reports[1..] {
        if r.scenario != out.scenario {
            bail!(
                "cannot merge a {:?} report into a {:?} one",
                r.scenario,
                out.scenario
            );
        }
        out.duration_s = out.duration_s.max(r.duration_s);
        out.partial |= r.partial;
        out.started_at = out.started_at.min(r.started_at);
        out.totals.ops += r.totals.ops;
        out.totals.errors += r.totals.errors;
        for (k, v) in &r.counters {
            *out.counters.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.errors {
            *out.errors.entry(k.clone()).or_default() += v;
        }
        for (name, lat) in &r.latencies {
            let h = lat.histogram()?;
            match hists.get_mut(name) {
                Some(acc) => acc
                    .add(&h)
                    .map_err(|e| anyhow::anyhow!("adding histogram {name}: {e:?}"))?,
                None => {
                    hists.insert(name.clone(), h);
                }
            }
        }
        merge_series(&mut out.series, &r.series);
        out.server = match (out.server.take(), &r.server) {
            (Some(a), Some(b)) => Some(ServerUsage {
                cpu_s: a.cpu_s.max(b.cpu_s),
                // The kernel part of whichever report's CPU is kept.
                kernel_cpu_s: if b.cpu_s > a.cpu_s {
                    b.kernel_cpu_s
                } else {
                    a.kernel_cpu_s
                },
                rss_max_bytes: a.rss_max_bytes.max(b.rss_max_bytes),
                ..a
            }),
            (a, b) => a.or_else(|| b.clone()),
        };
    }
    out.latencies = hists
        .iter()
        .map(|(k, h)| Ok((k.clone(), Latency::from_histogram(h)?)))
        .collect::<anyhow::Result<_>>()?;
    out.finish_totals();
    Ok(out)
}

fn merge_series(acc: &mut Vec<Sample>, other: &[Sample]) {
    for s in other {
        match acc.iter_mut().find(|a| a.t == s.t) {
            Some(a) => {
                a.ops += s.ops;
                a.errors += s.errors;
                a.clients += s.clients;
                a.server_cpu_s = max_opt(a.server_cpu_s, s.server_cpu_s);
                a.server_rss_bytes = a.server_rss_bytes.max(s.server_rss_bytes);
                a.expected = add_opt(a.expected, s.expected);
                a.lost = add_opt(a.lost, s.lost);
            }
            None => acc.push(s.clone()),
        }
    }
    acc.sort_by_key(|s| s.t);
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// One row of a summary or comparison table: a label and its value in each report.
pub fn table_rows(r: &Report) -> Vec<(String, Option<f64>)> {
    let mut rows = vec![
        (format!("{}s/s", r.unit), Some(r.totals.rate)),
        (format!("{}s", r.unit), Some(r.totals.ops as f64)),
        ("errors".to_string(), Some(r.totals.errors as f64)),
        ("error %".to_string(), Some(r.totals.error_pct)),
    ];
    if let Some((_, lat)) = r.main_latency() {
        rows.push(("p50 ms".into(), Some(lat.p50_us as f64 / 1e3)));
        rows.push(("p99 ms".into(), Some(lat.p99_us as f64 / 1e3)));
        rows.push(("p99.9 ms".into(), Some(lat.p999_us as f64 / 1e3)));
        rows.push(("max ms".into(), Some(lat.max_us as f64 / 1e3)));
    }
    let s = r.server.as_ref();
    rows.push(("server CPU s".into(), s.map(|s| s.cpu_s)));
    rows.push((
        format!("server CPU µs/{}", r.unit),
        s.and_then(|s| s.cpu_us_per_unit),
    ));
    rows.push((
        format!("… kernel µs/{}", r.unit),
        s.and_then(|s| {
            let ops = r.totals.ops;
            s.kernel_cpu_s
                .filter(|_| ops > 0)
                .map(|k| k * 1e6 / ops as f64)
        }),
    ));
    rows.push((
        format!("{}s per server CPU s", r.unit),
        s.and_then(|s| s.units_per_cpu_s),
    ));
    rows.push((
        "server RSS max MiB".into(),
        s.map(|s| s.rss_max_bytes as f64 / 1048576.0),
    ));
    for (k, v) in &r.counters {
        rows.push((k.clone(), Some(*v as f64)));
    }
    rows
}

/// Formats a number for a table: integers plainly, small values with 3 significant digits.
pub fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 1000.0 || v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The side-by-side table of `loadtest compare`: each row's value in `a`, in `b`, and b/a.
pub fn compare_table(a: &Report, b: &Report, a_name: &str, b_name: &str) -> String {
    let mut ra = table_rows(a);
    let rows_b = table_rows(b);
    // Rows only `b` has (a counter `a` never bumped, e.g. release failures) still show.
    for (label, _) in &rows_b {
        if !ra.iter().any(|(l, _)| l == label) {
            ra.push((label.clone(), None));
        }
    }
    let rb: BTreeMap<String, Option<f64>> = rows_b.into_iter().collect();
    let mut out = format!(
        "{:<32} {:>14} {:>14} {:>8}\n",
        "",
        short(a_name),
        short(b_name),
        "b/a"
    );
    for (label, va) in &ra {
        let vb = rb.get(label).copied().flatten();
        let ratio = match (va, vb) {
            (Some(x), Some(y)) if *x != 0.0 => format!("{:.2}", y / x),
            _ => "–".into(),
        };
        out += &format!(
            "{:<32} {:>14} {:>14} {:>8}\n",
            label,
            fmt_num(*va),
            fmt_num(vb),
            ratio
        );
    }
    out
}

fn short(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.chars().take(14).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    fn report_with(values: &[u64], ops: u64, t0: u32) -> Report {
        let mut r = Report::new("api", "127.0.0.1:8080", "request");
        r.duration_s = 10.0;
        r.totals.ops = ops;
        r.totals.errors = 1;
        r.latencies.insert(
            "all".into(),
            Latency::from_histogram(&hist_of(values)).unwrap(),
        );
        r.series = vec![Sample {
            t: t0,
            ops,
            errors: 1,
            ..Sample::default()
        }];
        r.counters.insert("logins".into(), 2);
        r.finish_totals();
        r
    }

    #[test]
    fn merge_equals_one_run_over_the_union() {
        let a: Vec<u64> = (1..=5000).map(|i| i * 7 % 30_000 + 1).collect();
        let b: Vec<u64> = (1..=3000).map(|i| i * 13 % 900_000 + 50).collect();
        let union: Vec<u64> = a.iter().chain(&b).copied().collect();
        let merged = merge(&[report_with(&a, 5000, 0), report_with(&b, 3000, 0)]).unwrap();
        let single = Latency::from_histogram(&hist_of(&union)).unwrap();
        let m = &merged.latencies["all"];
        assert_eq!(m.histogram().unwrap(), single.histogram().unwrap());
        assert_eq!(
            (m.count, m.p50_us, m.p99_us, m.p999_us, m.max_us),
            (
                single.count,
                single.p50_us,
                single.p99_us,
                single.p999_us,
                single.max_us
            )
        );
        assert_eq!(merged.totals.ops, 8000);
        assert_eq!(merged.totals.errors, 2);
        assert_eq!(merged.counters["logins"], 4);
        assert_eq!(merged.series.len(), 1);
        assert_eq!(merged.series[0].ops, 8000);
        assert!((merged.totals.rate - 800.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let values: Vec<u64> = (1..=1000).collect();
        let lat = Latency::from_histogram(&hist_of(&values)).unwrap();
        assert_eq!(lat.count, 1000);
        assert_eq!(lat.p50_us, 500);
        assert_eq!(lat.p99_us, 990);
        assert_eq!(lat.max_us, 1000);
        assert!((lat.mean_us - 500.5).abs() < 0.01);
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = report_with(&[10, 20, 30], 3, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        r.write(&path).unwrap();
        assert_eq!(Report::read(&path).unwrap(), r);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text = text.replace(SCHEMA, "switchboard-loadtest/0");
        std::fs::write(&path, text).unwrap();
        assert!(Report::read(&path).is_err());
    }

    #[test]
    fn cpu_per_unit_is_derived() {
        let mut r = report_with(&[1], 1000, 0);
        r.server = Some(ServerUsage {
            pid: 1,
            cpu_s: 0.5,
            ..ServerUsage::default()
        });
        r.finish_totals();
        let s = r.server.unwrap();
        assert_eq!(s.cpu_us_per_unit, Some(500.0));
        assert_eq!(s.units_per_cpu_s, Some(2000.0));
    }

    #[test]
    fn compare_prints_ratios() {
        let a = report_with(&[1000], 1000, 0);
        let b = report_with(&[2000], 3000, 0);
        let table = compare_table(&a, &b, "a.json", "b.json");
        let line = table.lines().find(|l| l.starts_with("requests/s")).unwrap();
        assert!(line.trim_end().ends_with("3.00"), "{line}");
        let mut c = b.clone();
        c.counters.insert("retransmits".into(), 7);
        let table = compare_table(&a, &c, "a.json", "c.json");
        let line = table
            .lines()
            .find(|l| l.starts_with("retransmits"))
            .unwrap();
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            ["retransmits", "–", "7", "–"]
        );
    }

    fn samples(ts: &[u32]) -> Vec<Sample> {
        ts.iter()
            .map(|&t| Sample {
                t,
                ..Sample::default()
            })
            .collect()
    }

    fn loss_of(series: &[Sample]) -> Vec<(u32, Option<u64>, Option<u64>)> {
        series.iter().map(|s| (s.t, s.expected, s.lost)).collect()
    }

    #[test]
    fn loss_per_second_by_send_time() {
        // Sent per second (index = t): 0, 10, 10, 10, 4; arrived of those: 0, 10, 7, 12, 4
        // (second 3: two duplicates), plus 5 sent after the last tick (t = 5) of which 3
        // arrived. By hand: t1 10/0, t2 10/3, t3 10/0 (never negative), t4 9/2 (4 + 5
        // folded in, 4 + 3 arrived).
        let mut series = samples(&[1, 2, 3, 4]);
        fill_loss(&mut series, &[0, 10, 10, 10, 4, 5], &[0, 10, 7, 12, 4, 3]);
        assert_eq!(
            loss_of(&series),
            [
                (1, Some(10), Some(0)),
                (2, Some(10), Some(3)),
                (3, Some(10), Some(0)),
                (4, Some(9), Some(2)),
            ]
        );
        assert_eq!(series[1].loss_pct(), Some(30.0));
        assert!((series[3].loss_pct().unwrap() - 200.0 / 9.0).abs() < 1e-9);
        assert_eq!(Sample::default().loss_pct(), None);

        // A skipped tick (no sample at t = 2): its second counts in the next sample; a
        // second with nothing sent has no loss percentage.
        let mut series = samples(&[1, 3]);
        fill_loss(&mut series, &[0, 0, 4, 6], &[0, 0, 3, 6]);
        assert_eq!(
            loss_of(&series),
            [(1, Some(0), Some(0)), (3, Some(10), Some(1))]
        );
        assert_eq!(series[0].loss_pct(), None);

        // Nothing to attach to: no panic, nothing invented.
        let mut empty: Vec<Sample> = Vec::new();
        fill_loss(&mut empty, &[1, 2], &[0, 0]);
        assert!(empty.is_empty());
    }

    #[test]
    fn loss_fields_are_optional_in_the_schema() {
        // Written without them when unknown, so reports of scenarios without loss (and of
        // older versions) look as before; read back as None.
        let r = report_with(&[10], 1, 1);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("\"expected\"") && !text.contains("\"lost\""));
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.series[0].expected, None);
        assert_eq!(back, r);
        // Known loss round-trips and merges by adding counts.
        let mut a = report_with(&[10], 1, 1);
        a.series[0].expected = Some(100);
        a.series[0].lost = Some(3);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), a);
        let merged = merge(&[a.clone(), a, report_with(&[10], 1, 1)]).unwrap();
        assert_eq!(merged.series[0].expected, Some(200));
        assert_eq!(merged.series[0].lost, Some(6));
    }
}
