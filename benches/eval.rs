//! Playbook evaluation speed: plans per second for 1, 100 and 1,000 loaded playbooks.
//! `cargo bench --bench eval`. Evaluation is pure (no I/O), so this is CPU only.

use std::time::Instant;

use lockout::alerts;
use lockout::alerts::{FieldMappings, SourceFormat};
use lockout::playbooks::{LoadContext, PlaybookSet, evaluate, load_str};

/// Playbook `i`; it matches the benchmark alert when `matches(i)`.
fn playbook(i: usize, matches: bool) -> String {
    let detection = if matches {
        "brute_force".to_string()
    } else {
        format!("detection_{i}")
    };
    format!(
        r#"
name: pb-{i}
on:
  status: firing
  when: >-
    alert.severity in ['high', 'critical'] &&
    'detection' in alert.labels && alert.labels.detection == '{detection}'
target: "alert.subjects.map(s, s.user_id != null ? s.user_id : s.email)"
guards:
  protected: [breakglass@example.com, "*@vip.example.com"]
steps:
  - suspend: {{}}
"#
    )
}

fn main() {
    let body = br#"{"id": "e-1", "title": "1Password: 14 failed sign-ins", "severity": "high",
        "user": {"email": "alice@example.com", "id": "A3K7MZQ2XJRVHBKWH7WLSPU4TE"},
        "labels": {"detection": "brute_force", "category": "credentials_failed", "count": 14}}"#;
    let alert = alerts::parse(SourceFormat::Generic, &FieldMappings::default(), None, body)
        .unwrap()
        .remove(0)
        .into_alert(
            "alr_bench".into(),
            "generic",
            SourceFormat::Generic,
            "2026-11-24T00:00:00Z".into(),
        );
    println!(
        "playbook evaluation (one alert against N playbooks), {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // Two mixes: one playbook in ten matches the alert (a busy alert), or exactly one does.
    for (mix, n) in [
        ("1 in 10 match", 1usize),
        ("1 in 10 match", 100),
        ("1 in 10 match", 1000),
        ("one matches", 100),
        ("one matches", 1000),
    ] {
        let set = PlaybookSet {
            playbooks: (0..n)
                .map(|i| {
                    let matches = if mix == "one matches" {
                        i == n / 2
                    } else {
                        i % 10 == 0
                    };
                    std::sync::Arc::new(
                        load_str(
                            &format!("pb-{i}.yaml"),
                            &playbook(i, matches),
                            &LoadContext::default(),
                        )
                        .unwrap(),
                    )
                })
                .collect(),
        };
        let iterations = (200_000 / n).max(200);
        // Warm up.
        for _ in 0..iterations / 10 {
            std::hint::black_box(evaluate(&set, &alert));
        }
        let started = Instant::now();
        let mut chains = 0;
        for _ in 0..iterations {
            chains += std::hint::black_box(evaluate(&set, &alert)).chains.len();
        }
        let per = started.elapsed() / iterations as u32;
        println!(
            "{n:>5} playbooks ({mix:<13}): {:>8.1} µs per alert, {:>8.0} plans/s  ({} chains per plan)",
            per.as_nanos() as f64 / 1000.0,
            1e9 / per.as_nanos() as f64,
            chains / iterations
        );
    }
}
