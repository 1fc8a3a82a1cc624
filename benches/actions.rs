//! Containment at the API's speed: the in-process fake plays a tenant (latency + jitter, a
//! count of concurrent requests) and lockout runs on its defaults. One scenario per run,
//! chosen by environment (see `benches/actions.sh`, which runs the matrix):
//!
//! - `SCENARIO=rate RATE=50|500 SECONDS=4`: alerts that each suspend a new user, posted at
//!   RATE per second; alert→`:suspend` (the fake's 200) p50/p99, actions/s, and whether it
//!   kept up (the last suspension within a second of the last alert).
//! - `SCENARIO=containment USERS=1000`: one alert per user, each waiting for a secops approval;
//!   all approved (16 at a time over HTTP); seconds from the first approval to the last
//!   `:suspend`, actions/s.
//!
//! `LATENCY_MS` (default 1) and `JITTER_MS` (default LATENCY_MS/10) per Users API request;
//! `STORE=sqlite|postgres` (PostgreSQL at `LOCKOUT_TEST_DATABASE_URL`, a fresh database).
//! Prints the peak of concurrent requests the fake saw and lockout's bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lockout::config::Settings;
use lockout::sandbox::{FakeClient, FakeConfig, SeedUser};
use lockout::startup::Application;
use serde_json::json;

const SECRET: &str = "bench-approver-secret-0123456789";

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn store_url(dir: &std::path::Path) -> String {
    if std::env::var("STORE").as_deref() != Ok("postgres") {
        return format!("sqlite://{}", dir.join("bench.db").display());
    }
    let base = std::env::var("LOCKOUT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let name = format!("lockout_bench_{}", std::process::id());
    let _ = std::process::Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("DROP DATABASE IF EXISTS {name}")])
        .output();
    let ok = std::process::Command::new("psql")
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(ok.success(), "CREATE DATABASE failed");
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

fn main() {
    let scenario = std::env::var("SCENARIO").unwrap_or_else(|_| "rate".into());
    let latency = Duration::from_millis(env_or("LATENCY_MS", 1));
    let jitter = Duration::from_millis(env_or("JITTER_MS", latency.as_millis() as u64 / 10));
    let rate: usize = env_or("RATE", 50);
    let seconds: usize = env_or("SECONDS", 4);
    let users: usize = if scenario == "rate" {
        rate * seconds
    } else {
        env_or("USERS", 1000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let seeds = SeedUser::generated(users);
        let fake = lockout::sandbox::start(
            FakeConfig {
                clients: vec![FakeClient::new("bench", "bench-secret")],
                ..FakeConfig::sandbox(seeds.clone())
            },
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let playbooks = dir.path().join("playbooks");
        std::fs::create_dir_all(&playbooks).unwrap();
        let step = if scenario == "rate" {
            "  - suspend: {}"
        } else {
            "  - suspend: { approval: { approvers: [secops], timeout: 1h } }"
        };
        std::fs::write(
            playbooks.join("contain.yaml"),
            format!("name: contain\non:\n  when: \"alert.title.contains('contain')\"\nsteps:\n{step}\n"),
        )
        .unwrap();
        let url = store_url(dir.path());
        let yaml = format!(
            r#"
server: {{ listen: "127.0.0.1:0", admin_token: "bench-admin-token" }}
store: {{ url: "{url}" }}
playbooks: {{ dir: "{pb}" }}
users_api: {{ base_url: "{base}", account_id: "{acc}", client_id: bench, client_secret: bench-secret }}
approvals: {{ hs256_secret: "{SECRET}" }}
sources:
  generic: {{ format: generic, auth: {{ type: bearer, token: "bench-source" }} }}
"#,
            pb = playbooks.display(),
            base = fake.base_url,
            acc = FakeConfig::SANDBOX_ACCOUNT,
        );
        let path = dir.path().join("lockout.yaml");
        std::fs::write(&path, yaml).unwrap();
        let settings: Settings = Settings::load(Some(&path)).unwrap().0;
        let app = Application::build(settings).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let ctx = app.context();
        let stop = app.stop_handle();
        let running = tokio::spawn(app.run_until_stopped());
        let http = reqwest::Client::new();
        // The directory learns the account once, as it would in service.
        ctx.directory
            .find_by_email(
                &lockout::domain::Email::parse(&seeds[0].email).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
        fake.handle.set_latency_jitter(latency, jitter);
        fake.handle.reset_peak_in_flight();
        let post = |i: usize| {
            let http = http.clone();
            let url = format!("{base}/v1/alerts/generic");
            let email = seeds[i].email.clone();
            async move {
                let r = http
                    .post(url)
                    .bearer_auth("bench-source")
                    .json(&json!({"id": format!("bench-{i}"), "title": "contain this user", "severity": "high", "user": {"email": email}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        };
        let suspended_at = |fake: &lockout::sandbox::RunningFake| -> HashMap<String, Instant> {
            fake.handle.first_ok_at()
        };
        let path_of = |i: usize| format!("/users/{}:suspend", seeds[i].id);
        match scenario.as_str() {
            "rate" => {
                let mut posted: Vec<Instant> = Vec::with_capacity(users);
                let began = Instant::now();
                let mut tasks = vec![];
                for i in 0..users {
                    let due = began + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                    posted.push(Instant::now());
                    tasks.push(tokio::spawn(post(i)));
                }
                let last_post = Instant::now();
                for t in tasks {
                    t.await.unwrap();
                }
                let deadline = Instant::now() + Duration::from_secs(120);
                let done = loop {
                    let done = suspended_at(&fake);
                    if done.len() >= users || Instant::now() > deadline {
                        break done;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                let mut lat: Vec<Duration> = (0..users)
                    .filter_map(|i| {
                        done.iter()
                            .find(|(p, _)| p.ends_with(&path_of(i)))
                            .map(|(_, at)| at.saturating_duration_since(posted[i]))
                    })
                    .collect();
                lat.sort();
                let last = done.values().max().copied().unwrap_or(last_post);
                let span = last.duration_since(began).as_secs_f64();
                println!(
                    "rate {rate}/s x {seconds}s, API {}ms±{}ms, {}: {} of {users} suspended; alert->:suspend p50 {:.0} ms, p99 {:.0} ms; {:.0} actions/s; last :suspend {:.2} s after the last alert ({}); peak in flight {} (bound {})",
                    latency.as_millis(),
                    jitter.as_millis(),
                    std::env::var("STORE").unwrap_or_else(|_| "sqlite".into()),
                    lat.len(),
                    percentile(&lat, 0.5).as_secs_f64() * 1000.0,
                    percentile(&lat, 0.99).as_secs_f64() * 1000.0,
                    lat.len() as f64 / span,
                    last.saturating_duration_since(last_post).as_secs_f64(),
                    if last.saturating_duration_since(last_post) < Duration::from_secs(1) { "kept up" } else { "backlog" },
                    fake.handle.peak_in_flight(),
                    ctx.users.in_flight().max,
                );
            }
            _ => {
                let mut tasks = vec![];
                for i in 0..users {
                    tasks.push(tokio::spawn(post(i)));
                    if tasks.len() >= 64 {
                        for t in tasks.drain(..) {
                            t.await.unwrap();
                        }
                    }
                }
                for t in tasks {
                    t.await.unwrap();
                }
                let deadline = Instant::now() + Duration::from_secs(300);
                let pending = loop {
                    let p = ctx
                        .store
                        .list_approvals(Some(lockout::store::ApprovalState::Pending))
                        .await
                        .unwrap();
                    if p.len() >= users {
                        break p;
                    }
                    assert!(Instant::now() < deadline, "{} approvals pending", p.len());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                fake.handle.reset_peak_in_flight();
                let jwt = lockout::approvals::issue_hs256(
                    SECRET,
                    "ana@example.com",
                    &["secops".to_owned()],
                    Duration::from_secs(3600),
                    None,
                    None,
                );
                let began = Instant::now();
                let approve = futures::stream::iter(pending.into_iter().map(|a| {
                    let http = http.clone();
                    let url = format!("{base}/v1/approvals/{}/approve", a.id);
                    let jwt = jwt.clone();
                    async move {
                        let r = http.post(url).bearer_auth(jwt).json(&json!({"reason": "incident 42"})).send().await.unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                    }
                }));
                use futures::StreamExt;
                approve.buffer_unordered(16).collect::<Vec<()>>().await;
                let approved = began.elapsed();
                let deadline = Instant::now() + Duration::from_secs(300);
                let done = loop {
                    let done = suspended_at(&fake);
                    if done.len() >= users || Instant::now() > deadline {
                        break done;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                let last = done.values().max().copied().unwrap();
                let took = last.duration_since(began).as_secs_f64();
                println!(
                    "containment of {users} users, API {}ms±{}ms, {}: all approved in {:.2} s, all suspended {:.2} s after the first approval ({} suspended); {:.0} actions/s; peak in flight {} (bound {})",
                    latency.as_millis(),
                    jitter.as_millis(),
                    std::env::var("STORE").unwrap_or_else(|_| "sqlite".into()),
                    approved.as_secs_f64(),
                    took,
                    done.len(),
                    done.len() as f64 / took,
                    fake.handle.peak_in_flight(),
                    ctx.users.in_flight().max,
                );
            }
        }
        stop.stop(true).await;
        let _ = running.await;
    });
}
