//! Prometheus metrics, kept per service instance (no global recorder, so tests can run
//! several apps in one process) and rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

type Labels = Vec<(&'static str, String)>;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

/// Help text of every series, which is also the list of what exists.
const HELP: &[(&str, &str, &str)] = &[
    (
        "lockout_alerts_received_total",
        "counter",
        "Alerts stored, by source",
    ),
    (
        "lockout_alerts_duplicate_total",
        "counter",
        "Re-deliveries stored as duplicates, by source",
    ),
    (
        "lockout_alerts_rejected_total",
        "counter",
        "Requests refused at intake, by source and reason",
    ),
    (
        "lockout_plans_total",
        "counter",
        "Alerts evaluated against the playbooks",
    ),
    (
        "lockout_actions_total",
        "counter",
        "Actions finished, by kind and outcome",
    ),
    (
        "lockout_approvals_total",
        "counter",
        "Approval decisions and expiries, by outcome",
    ),
    (
        "lockout_users_api_calls_total",
        "counter",
        "Calls to the 1Password Users API, by operation and status",
    ),
    (
        "lockout_users_api_call_duration_seconds",
        "histogram",
        "Latency of Users API calls, by operation",
    ),
    (
        "lockout_token_requests_total",
        "counter",
        "OAuth token requests",
    ),
    (
        "lockout_dedup_forgotten_total",
        "counter",
        "Alerts the SQLite intake stopped remembering for de-duplication before their window ended (more distinct alerts in a window than it holds): a re-delivery of one is stored as new",
    ),
    ("lockout_queue_depth", "gauge", "Open actions, by state"),
    (
        "lockout_oldest_pending_approval_age_seconds",
        "gauge",
        "Age of the oldest pending approval",
    ),
    (
        "lockout_events_ingested_total",
        "counter",
        "New 1Password Events API events kept, by feed",
    ),
    (
        "lockout_events_errors_total",
        "counter",
        "Failed Events API polls (after the client's retries), by feed",
    ),
    (
        "lockout_events_last_event_age_seconds",
        "gauge",
        "Time since a feed last brought a new event",
    ),
    (
        "lockout_events_lag_seconds",
        "gauge",
        "Age of the newest event read from a feed",
    ),
    (
        "lockout_events_feed_healthy",
        "gauge",
        "1 when a feed is healthy, 0 when it errors or is silent past events_api.silence_alarm_secs",
    ),
    (
        "lockout_users_api_in_flight_limit",
        "gauge",
        "How many Users API requests may be in flight now (users_api.max_in_flight, less after 429s and 5xxs)",
    ),
    (
        "lockout_users_api_in_flight",
        "gauge",
        "Users API requests in flight now",
    ),
    (
        "lockout_users_api_in_flight_peak",
        "gauge",
        "The most Users API requests in flight at once since start",
    ),
    (
        "lockout_users_api_backoffs_total",
        "counter",
        "Times the in-flight limit was halved (429, 5xx, no answer)",
    ),
    (
        "lockout_actions_verified_total",
        "counter",
        "Suspensions and reactivations checked against 1Password's audit events, by outcome",
    ),
];

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        // An existing series is found without allocating its label set (intake counts every
        // alert); a name has few series, and an empty `Vec` is the first of them.
        let same = |l: &Labels| {
            l.len() == labels.len() && l.iter().zip(labels).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        let existing = counters
            .range_mut((name, Vec::new())..)
            .take_while(|((series, _), _)| *series == name)
            .find(|((_, l), _)| same(l));
        match existing {
            Some((_, count)) => *count += n,
            None => {
                let key = (
                    name,
                    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
                );
                counters.insert(key, n);
            }
        }
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let h = h.entry(key).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// The exposition text. `sampled` are values the caller reads at scrape time (gauges, and
    /// counters kept elsewhere, such as the client's token requests).
    pub fn render(&self, sampled: &[(&'static str, Labels, f64)]) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let fmt_labels = |l: &Labels, extra: Option<(&str, String)>| {
            let mut parts: Vec<String> = l
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if let Some((k, v)) = extra {
                parts.push(format!("{k}=\"{v}\""));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match *kind {
                "counter" => {
                    for ((n, l), v) in counters.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
                    }
                    for (n, l, v) in sampled.iter().filter(|(n, _, _)| n == name) {
                        let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
                    }
                }
                "histogram" => {
                    for ((n, l), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                        for (i, b) in BUCKETS.iter().enumerate() {
                            let _ = writeln!(
                                out,
                                "{n}_bucket{} {}",
                                fmt_labels(l, Some(("le", b.to_string()))),
                                h.counts[i]
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{n}_bucket{} {}",
                            fmt_labels(l, Some(("le", "+Inf".into()))),
                            h.count
                        );
                        let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(l, None), h.sum);
                        let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count);
                    }
                }
                _ => {
                    for (n, l, v) in sampled.iter().filter(|(n, _, _)| n == name) {
                        let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
                    }
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_set_of_each_counter_counts_apart() {
        let m = Metrics::default();
        let rejected = "lockout_alerts_rejected_total";
        for (name, labels, n) in [
            (rejected, vec![("source", "b"), ("reason", "x")], 1),
            (rejected, vec![("source", "a"), ("reason", "x")], 2),
            (rejected, vec![("source", "b"), ("reason", "x")], 3),
            (rejected, vec![("source", "b")], 4),
            ("lockout_plans_total", vec![], 5),
            ("lockout_plans_total", vec![], 6),
        ] {
            m.add(name, &labels, n);
        }
        let text = m.render(&[]);
        for line in [
            "lockout_alerts_rejected_total{source=\"b\",reason=\"x\"} 4",
            "lockout_alerts_rejected_total{source=\"a\",reason=\"x\"} 2",
            "lockout_alerts_rejected_total{source=\"b\"} 4",
            "lockout_plans_total 11",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.inc("lockout_alerts_received_total", &[("source", "generic")]);
        m.inc("lockout_alerts_received_total", &[("source", "generic")]);
        m.observe(
            "lockout_users_api_call_duration_seconds",
            &[("operation", "get_user")],
            0.02,
        );
        let text = m.render(&[("lockout_queue_depth", vec![("state", "ready".into())], 3.0)]);
        assert!(
            text.contains("lockout_alerts_received_total{source=\"generic\"} 2"),
            "{text}"
        );
        assert!(text.contains("lockout_users_api_call_duration_seconds_bucket{operation=\"get_user\",le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("lockout_users_api_call_duration_seconds_bucket{operation=\"get_user\",le=\"0.01\"} 0"), "{text}");
        assert!(
            text.contains("lockout_queue_depth{state=\"ready\"} 3"),
            "{text}"
        );
    }
}
