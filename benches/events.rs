//! Events API ingestion: 100,000 events read from the in-process fake through cursor paging
//! (1,000 per page), de-duplicated, stored, and each turned into an alert with the shipped
//! playbooks' windows computed over its user's history, on SQLite.
//! `cargo bench --bench events` (EVENTS=100000 USERS=2000 by default). Prints events/s and
//! the process's peak memory (the fake's copy of the stream included).

use std::time::{Duration, Instant};

use lockout::config::Settings;
use lockout::events_api::Feed;
use lockout::sandbox::{FakeClient, FakeConfig, SeedUser};
use lockout::startup::Application;
use serde_json::json;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let users: usize = std::env::var("USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
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
        // Per user, in time order over the last 50 minutes: item reveals and sign-ins, a failed
        // one now and then; a stream the windows must read but that rarely matches.
        let start = time::OffsetDateTime::now_utc() - time::Duration::minutes(50);
        let step = 3000.0 / events as f64;
        let (mut sign_ins, mut usages) = (vec![], vec![]);
        for i in 0..events {
            let u = &seeds[i % users];
            let who = json!({"uuid": u.id.as_str(), "email": u.email, "name": u.display_name});
            let at = lockout::domain::format_time(start + time::Duration::seconds_f64(i as f64 * step));
            if i % 10 < 7 {
                usages.push(json!({"timestamp": at, "used_version": 1, "vault_uuid": "v", "item_uuid": format!("item{}", i % 97), "action": "reveal", "user": who}));
            } else {
                let failed = i % 10 == 9 && (i / users).is_multiple_of(3);
                sign_ins.push(json!({"timestamp": at, "session_uuid": format!("s{i}"),
                    "category": if failed { "credentials_failed" } else { "success" },
                    "type": if failed { "password_secret_bad" } else { "credentials_ok" },
                    "country": "CA", "target_user": who, "client": {"ip_address": "198.51.100.1"}}));
            }
        }
        fake.handle.push_events(Feed::SignInAttempts, sign_ins);
        fake.handle.push_events(Feed::ItemUsages, usages);

        let dir = tempfile::tempdir().unwrap();
        let playbooks = dir.path().join("playbooks");
        std::fs::create_dir_all(&playbooks).unwrap();
        for p in ["events-brute-force.yaml", "events-impossible-travel.yaml", "events-bulk-item-usage.yaml", "events-admin-actions.yaml"] {
            std::fs::copy(format!("playbooks/{p}"), playbooks.join(p)).unwrap();
        }
        let yaml = format!(
            r#"
server: {{ listen: "127.0.0.1:0", admin_token: "bench-admin-token" }}
store: {{ url: "sqlite://{db}" }}
playbooks: {{ dir: "{pb}" }}
users_api: {{ base_url: "{base}", account_id: "{acc}", client_id: bench, client_secret: bench-secret }}
approvals: {{ hs256_secret: "bench-approver-secret-0123456789" }}
sources:
  onepassword: {{ format: 1password_events, auth: {{ type: bearer, token: "bench-source" }} }}
events_api:
  base_url: "{base}"
  token: "{token}"
  source: onepassword
  feeds: [signinattempts, itemusages]
  poll_interval_secs: 1
"#,
            db = dir.path().join("bench.db").display(),
            pb = playbooks.display(),
            base = fake.base_url,
            acc = FakeConfig::SANDBOX_ACCOUNT,
            token = FakeConfig::SANDBOX_EVENTS_TOKEN,
        );
        let path = dir.path().join("lockout.yaml");
        std::fs::write(&path, yaml).unwrap();
        let settings: Settings = Settings::load(Some(&path)).unwrap().0;
        let before = peak_rss_mib();
        let began = Instant::now();
        let app = Application::build(settings).await.unwrap();
        let ctx = app.context();
        let stop = app.stop_handle();
        let running = tokio::spawn(app.run_until_stopped());
        let rt = ctx.events.clone().unwrap();
        loop {
            let done: u64 = [Feed::SignInAttempts, Feed::ItemUsages]
                .iter()
                .map(|f| rt.health_of(*f).events_total)
                .sum();
            if done as usize >= events {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(1800), "stalled at {done}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = began.elapsed();
        let matched = ctx.store.list_actions(None).await.unwrap().len();
        println!(
            "{events} events ({users} users) ingested in {:.1} s: {:.0} events/s, each stored, alerted on and its windows computed; {matched} actions planned",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
        println!(
            "peak memory: {:.0} MiB (before lockout started, with the fake's stream: {:.0} MiB)",
            peak_rss_mib(),
            before
        );
        stop.stop(true).await;
        let _ = running.await;
    });
}
