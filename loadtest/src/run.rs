//! What every scenario shares: flags, live counters, the pacer, the run loop.
//!
//! A run lasts `--duration` (ramp-up included) or until `--count` units of work, Ctrl-C,
//! the scenario's own end, or the sampled server going away, whichever comes first; then
//! clients get [`STOP_GRACE`] to notice and the report covers what ran (`partial` when it
//! did not end by its time or count bound).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Notify;

use crate::procstat;
use crate::report::{
    fill_loss, new_histogram, Latency, Report, Sample, ServerUsage, MAX_LATENCY_US,
};

/// Longest run accepted (arbitrary: a load run longer than an hour is a soak test, not this tool).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most clients accepted (arbitrary, below the default open-files limits of one process).
pub const MAX_CLIENTS: u32 = 50_000;
/// How long clients get to stop after the run ends before the report is written anyway.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Measured run time, ramp-up included (e.g. `30s`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time over which clients start, evenly spread.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub ramp_up: Duration,
    /// Total operations (requests, messages, packets) per second over all clients; 0 = as fast as they go.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Concurrent clients (users, connections, allocations).
    #[arg(long, default_value_t = 10)]
    pub clients: u32,
    /// End after this many units of work, even before --duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Sample this server process's CPU seconds and RSS from /proc once a second.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Objectives, e.g. `p99<50ms,errors<1%`: the exit code is 3 when one is breached.
    #[arg(long)]
    pub slo: Option<String>,
    /// No live progress line (logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

impl Common {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.duration > Duration::ZERO && self.duration <= MAX_DURATION,
            "--duration must be between 0 and {}s",
            MAX_DURATION.as_secs()
        );
        anyhow::ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "--clients must be 1..={MAX_CLIENTS}"
        );
        anyhow::ensure!(
            self.rate >= 0.0 && self.rate.is_finite(),
            "--rate must be >= 0"
        );
        if let Some(spec) = &self.slo {
            crate::slo::parse(spec)?;
        }
        Ok(())
    }

    /// The report's `params` these flags contribute; scenarios add their own.
    pub fn params(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        [
            ("clients", serde_json::json!(self.clients)),
            ("rate", serde_json::json!(self.rate)),
            ("duration_s", serde_json::json!(self.duration.as_secs_f64())),
            ("ramp_up_s", serde_json::json!(self.ramp_up.as_secs_f64())),
            ("count", serde_json::json!(self.count)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Per-client share of `--rate` (0 = unpaced).
    pub fn rate_per_client(&self) -> f64 {
        self.rate / self.clients as f64
    }

    /// When client `i` of `n` starts, after the run's start.
    pub fn ramp_delay(&self, i: u32, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        self.ramp_up.mul_f64(i as f64 / n as f64)
    }
}

/// `500ms`, `30s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (500ms, 30s, 2m)"))?;
    if !(0.0..=1e7).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Counters shared by a run's clients and its sampler.
pub struct Live {
    /// The process-wide time origin: message timestamps are µs since it.
    pub epoch: Instant,
    ops: AtomicU64,
    errors: AtomicU64,
    clients: AtomicU32,
    stopped: AtomicBool,
    stop_notify: Notify,
    count_limit: Option<u64>,
    hists: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
    counters: Mutex<BTreeMap<String, u64>>,
    notes: Mutex<Vec<String>>,
    /// When the measured run started, µs since `epoch` (set by [`drive`]).
    run_start_us: AtomicU64,
    /// Loss by the second units were sent in (index = the series' `t`): units expected,
    /// and units arrived. Atomics, so packet receivers count without a lock.
    loss_expected: Box<[AtomicU64]>,
    loss_arrived: Box<[AtomicU64]>,
    loss_known: AtomicBool,
}

/// Seconds of per-second loss kept: the longest run, its drain, and a margin.
const LOSS_SECONDS: usize = MAX_DURATION.as_secs() as usize + 16;

impl Live {
    pub fn new(count_limit: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            clients: AtomicU32::new(0),
            stopped: AtomicBool::new(false),
            stop_notify: Notify::new(),
            count_limit,
            hists: Mutex::new(BTreeMap::new()),
            error_kinds: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(BTreeMap::new()),
            notes: Mutex::new(Vec::new()),
            run_start_us: AtomicU64::new(0),
            loss_expected: (0..LOSS_SECONDS).map(|_| AtomicU64::new(0)).collect(),
            loss_arrived: (0..LOSS_SECONDS).map(|_| AtomicU64::new(0)).collect(),
            loss_known: AtomicBool::new(false),
        })
    }

    /// The series second a unit sent at `sent_us` (µs since `epoch`) belongs to: sends in
    /// the run's first second count at `t` = 1, as the first sample does.
    fn loss_slot(&self, sent_us: u64) -> usize {
        let rel = sent_us.saturating_sub(self.run_start_us.load(Ordering::Relaxed));
        ((rel / 1_000_000) as usize + 1).min(LOSS_SECONDS - 1)
    }

    /// `n` units sent at `sent_us` that should arrive (a message times its recipients, a
    /// packet, or a gap in a receiver's sequence numbers): per-second loss is known.
    pub fn expect_at(&self, sent_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.loss_expected[self.loss_slot(sent_us)].fetch_add(n, Ordering::Relaxed);
        if !self.loss_known.load(Ordering::Relaxed) {
            self.loss_known.store(true, Ordering::Relaxed);
        }
    }

    /// `n` units sent at `sent_us` (the time they carry) arrived.
    pub fn arrived_at(&self, sent_us: u64, n: u64) {
        self.loss_arrived[self.loss_slot(sent_us)].fetch_add(n, Ordering::Relaxed);
    }

    /// Expected and arrived units by second, when the scenario counted them.
    pub fn loss_by_second(&self) -> Option<(Vec<u64>, Vec<u64>)> {
        if !self.loss_known.load(Ordering::Relaxed) {
            return None;
        }
        let read = |v: &[AtomicU64]| {
            let mut out: Vec<u64> = v.iter().map(|a| a.load(Ordering::Relaxed)).collect();
            while out.last() == Some(&0) {
                out.pop();
            }
            out
        };
        Some((read(&self.loss_expected), read(&self.loss_arrived)))
    }

    /// µs since [`Live::epoch`].
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// One unit of work done, with its latency under `op` and under `all`.
    pub fn record(&self, op: &'static str, latency_us: u64) {
        let v = latency_us.clamp(1, MAX_LATENCY_US);
        {
            let mut hists = lock(&self.hists);
            for name in [op, "all"] {
                // `v` is clamped into the histogram's range, so recording cannot fail.
                let _ = hists.entry(name).or_insert_with(new_histogram).record(v);
            }
        }
        let done = self.ops.fetch_add(1, Ordering::Relaxed) + 1;
        if self.count_limit.is_some_and(|limit| done >= limit) {
            self.stop();
        }
    }

    /// Many units of work at once (a receiver's batch), each with its latency under `op`
    /// and `all`: one lock per batch instead of one per packet.
    pub fn record_many(&self, op: &'static str, latencies_us: &[u64]) {
        if latencies_us.is_empty() {
            return;
        }
        {
            let mut hists = lock(&self.hists);
            for name in [op, "all"] {
                let h = hists.entry(name).or_insert_with(new_histogram);
                for &v in latencies_us {
                    // Clamped into the histogram's range, so recording cannot fail.
                    let _ = h.record(v.clamp(1, MAX_LATENCY_US));
                }
            }
        }
        let n = latencies_us.len() as u64;
        let done = self.ops.fetch_add(n, Ordering::Relaxed) + n;
        if self.count_limit.is_some_and(|limit| done >= limit) {
            self.stop();
        }
    }

    /// A latency that is not a unit of work (a login, a join): kept under `op` only.
    pub fn latency(&self, op: &'static str, latency_us: u64) {
        let v = latency_us.clamp(1, MAX_LATENCY_US);
        // `v` is clamped into the histogram's range, so recording cannot fail.
        let _ = lock(&self.hists)
            .entry(op)
            .or_insert_with(new_histogram)
            .record(v);
    }

    /// One unit of work done without a latency (e.g. a relayed packet counted by the receiver).
    pub fn count_op(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, kind: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.error_kinds).entry(kind.into()).or_default() += 1;
    }

    pub fn add(&self, counter: &str, n: u64) {
        *lock(&self.counters).entry(counter.to_string()).or_default() += n;
    }

    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        let mut notes = lock(&self.notes);
        if !notes.contains(&text) {
            notes.push(text);
        }
    }

    pub fn client_up(&self) {
        self.clients.fetch_add(1, Ordering::Relaxed);
    }

    pub fn client_down(&self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn clients(&self) -> u32 {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop_notify.notify_waiters();
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once the run is told to stop.
    pub async fn wait_stop(&self) {
        loop {
            let notified = self.stop_notify.notified();
            if self.stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Sleeps for `d`, or less if the run stops first; true if it stopped.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = self.wait_stop() => true,
        }
    }

    fn p99_us(&self) -> Option<u64> {
        let hists = lock(&self.hists);
        hists
            .get("all")
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A client task that panicked while holding a counter lock left consistent data (each
    // update is one call); keep counting.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Paces one client at `per_s` operations a second (0 = unpaced). A client that falls
/// more than a second behind skips the backlog rather than bursting it.
pub struct Pacer {
    per_s: f64,
    start: Instant,
    done: u64,
}

impl Pacer {
    pub fn new(per_s: f64) -> Self {
        Self {
            per_s,
            start: Instant::now(),
            done: 0,
        }
    }

    /// When the next operation is due (now when unpaced or behind by over a second).
    pub fn due(&mut self) -> Instant {
        let now = Instant::now();
        if self.per_s <= 0.0 {
            return now;
        }
        let due = self.start + Duration::from_secs_f64(self.done as f64 / self.per_s);
        if now > due && now - due > Duration::from_secs(1) {
            self.start = now;
            self.done = 0;
            return now;
        }
        due
    }

    /// The due operation was done.
    pub fn advance(&mut self) {
        self.done += 1;
    }

    /// Waits until the next operation is due; false if the run stopped meanwhile.
    pub async fn wait(&mut self, live: &Live) -> bool {
        if live.stopped() {
            return false;
        }
        let due = self.due();
        self.advance();
        let now = Instant::now();
        if due > now {
            !live.sleep(due - now).await
        } else {
            true
        }
    }
}

/// [`drive`] for scenarios over UDP: also counts the host's UDP receive-buffer drops over the
/// run (`host_udp_rcvbuf_drops`). Host-wide (other processes' sockets too), but on a quiet
/// machine it says whether lost packets died in a full socket buffer rather than in the
/// server's logic.
pub async fn drive_udp<F>(common: &Common, live: Arc<Live>, report: Report, work: F) -> Report
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let drops0 = procstat::udp_rcvbuf_errors();
    let mut report = drive(common, live, report, work).await;
    if let (Some(a), Some(b)) = (drops0, procstat::udp_rcvbuf_errors()) {
        report
            .counters
            .insert("host_udp_rcvbuf_drops".into(), b.saturating_sub(a));
    }
    report
}

/// Runs `work` (the scenario's clients) under the run's bounds, sampling once a second,
/// and returns the report. `report` brings the scenario's name, target, unit and params.
pub async fn drive<F>(common: &Common, live: Arc<Live>, mut report: Report, work: F) -> Report
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    report.started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let start = Instant::now();
    live.run_start_us.store(live.now_us(), Ordering::Relaxed);
    // The load generator's own CPU: near one core per thread means it, not the server, set the pace.
    let own0 = procstat::read(std::process::id());
    let deadline = start + common.duration;
    let bar = progress_bar(common.quiet);
    let mut work = tokio::spawn(work);
    let server0 = common.server_pid.and_then(procstat::read);
    if common.server_pid.is_some() && server0.is_none() {
        live.note("the server process to sample was not found");
    }
    let mut prev = server0;
    let (mut prev_ops, mut prev_errors) = (0, 0);
    let mut rss_max = server0.map(|u| u.rss_bytes).unwrap_or(0);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut ended_by_bound = false;
    let mut work_done = false;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut ctrl_c => {
                live.note("interrupted (Ctrl-C): partial report");
                break;
            }
            _ = live.wait_stop() => {
                ended_by_bound = true;
                break;
            }
            res = &mut work => {
                work_done = true;
                match res {
                    Ok(Ok(())) => ended_by_bound = true,
                    Ok(Err(e)) => live.note(format!("scenario failed: {e:#}")),
                    Err(e) => live.note(format!("scenario panicked: {e}")),
                }
                break;
            }
        }
        let t = start.elapsed().as_secs_f64().round() as u32;
        let (ops, errors) = (live.ops(), live.errors());
        let mut sample = Sample {
            t,
            ops: ops - prev_ops,
            errors: errors - prev_errors,
            clients: live.clients(),
            ..Sample::default()
        };
        (prev_ops, prev_errors) = (ops, errors);
        if let Some(pid) = common.server_pid {
            match procstat::read(pid) {
                Some(u) => {
                    sample.server_cpu_s = prev.map(|p| u.cpu_s - p.cpu_s);
                    sample.server_rss_bytes = Some(u.rss_bytes);
                    rss_max = rss_max.max(u.rss_bytes);
                    prev = Some(u);
                }
                None if server0.is_some() => {
                    live.note(format!(
                        "scenario failed: the server (pid {pid}) went away after {t}s"
                    ));
                    report.series.push(sample);
                    break;
                }
                None => {}
            }
        }
        bar.set_message(progress_line(&live, &sample, t, common));
        report.series.push(sample);
        if Instant::now() >= deadline {
            ended_by_bound = true;
            break;
        }
    }
    let measured = start.elapsed();
    let server_end = common.server_pid.and_then(procstat::read).or(prev);
    if let (Some(a), Some(b)) = (own0, procstat::read(std::process::id())) {
        live.add("loadgen_cpu_ms", ((b.cpu_s - a.cpu_s) * 1e3).round() as u64);
    }
    live.stop();
    bar.finish_and_clear();
    if !work_done && tokio::time::timeout(STOP_GRACE, &mut work).await.is_err() {
        work.abort();
        live.note("clients did not stop in time; they were cancelled");
    }
    report.duration_s = measured.as_secs_f64();
    report.partial = !ended_by_bound;
    if let (Some(pid), Some(a), Some(b)) = (common.server_pid, server0, server_end) {
        report.server = Some(ServerUsage {
            pid,
            cpu_s: b.cpu_s - a.cpu_s,
            kernel_cpu_s: Some(b.kernel_cpu_s - a.kernel_cpu_s),
            rss_start_bytes: a.rss_bytes,
            rss_max_bytes: rss_max.max(b.rss_bytes),
            ..ServerUsage::default()
        });
    }
    fill_report(&mut report, &live);
    report
}

fn fill_report(report: &mut Report, live: &Live) {
    report.totals.ops = live.ops();
    report.totals.errors = live.errors();
    for (name, h) in lock(&live.hists).iter() {
        match Latency::from_histogram(h) {
            Ok(lat) => {
                report.latencies.insert(name.to_string(), lat);
            }
            Err(e) => report.notes.push(format!("latency {name}: {e:#}")),
        }
    }
    report.errors = lock(&live.error_kinds).clone();
    for (k, v) in lock(&live.counters).iter() {
        *report.counters.entry(k.clone()).or_default() += v;
    }
    report.notes.extend(lock(&live.notes).iter().cloned());
    if let Some((expected, arrived)) = live.loss_by_second() {
        fill_loss(&mut report.series, &expected, &arrived);
    }
    report.finish_totals();
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    // The template is a constant that indicatif accepts.
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn progress_line(live: &Live, s: &Sample, t: u32, common: &Common) -> String {
    let p99 = live
        .p99_us()
        .map(|v| format!("{:.2}ms", v as f64 / 1e3))
        .unwrap_or_else(|| "–".into());
    let cpu = s
        .server_cpu_s
        .map(|c| format!(" | server CPU {:.0}%", c * 100.0))
        .unwrap_or_default();
    format!(
        "{t}s/{}s | clients {}/{} | {}/s | errors {} | p99 {p99}{cpu}",
        common.duration.as_secs(),
        s.clients,
        common.clients,
        s.ops,
        live.errors(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn loss_is_counted_by_the_second_units_were_sent_in() {
        let live = Live::new(None);
        assert_eq!(
            live.loss_by_second(),
            None,
            "unknown until a scenario counts it"
        );
        live.run_start_us.store(5_000_000, Ordering::Relaxed);
        // Sent at 0.2 s and 1.5 s into the run; one sent before the start counts in t = 1.
        live.expect_at(5_200_000, 3);
        live.expect_at(6_500_000, 2);
        live.expect_at(1_000, 1);
        // Arrivals are counted by the send time they carry, whenever they come.
        live.arrived_at(5_200_000, 2);
        live.arrived_at(6_500_000, 2);
        assert_eq!(live.loss_by_second(), Some((vec![0, 4, 2], vec![0, 2, 2])));
        // Beyond the longest run: the last slot, never out of bounds.
        live.expect_at(u64::MAX, 1);
        assert_eq!(live.loss_by_second().unwrap().0.len(), LOSS_SECONDS);
    }

    #[tokio::test]
    async fn count_bound_stops_the_run() {
        let live = Live::new(Some(3));
        for _ in 0..3 {
            live.record("op", 10);
        }
        assert!(live.stopped());
        live.wait_stop().await;
    }
}
