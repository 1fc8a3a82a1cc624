//! Several replicas on one PostgreSQL behave as one service; a killed replica's claimed work is
//! finished by the other. And on SQLite, a kill -9 during a burst loses no acknowledged alert
//! and doubles no action.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockout::sandbox::{SeedUser, sample_users};
use lockout::store::{ActionState, Store};
use serde_json::{Value, json};

use crate::helpers::*;

struct Replica {
    child: Child,
    base: String,
}
impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn replica(config: &std::path::Path, name: &str) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("LOCKOUT__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("LOCKOUT__SERVER__INSTANCE_NAME", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "replica {name} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Replica { child, base }
}

const PLAYBOOKS: &str =
    "name: s\non:\n  when: \"alert.title.contains('brute')\"\nsteps:\n  - suspend: {}\n";
const TEMPORARY: &str = "name: t\non:\n  when: \"alert.title.contains('temporary')\"\nsteps:\n  - suspend: {}\n  - reactivate: { after: 2s }\n";

fn setup(
    store_url: String,
    extra: &str,
) -> (
    lockout::sandbox::RunningFake,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let mut users = sample_users();
    users.extend(SeedUser::generated(80));
    let fake = start_fake(fake_config(users.clone()));
    let dir = tempfile::tempdir().unwrap();
    write_settings(
        dir.path(),
        &fake,
        &AppOptions {
            playbooks: vec![("s.yaml", PLAYBOOKS.into()), ("t.yaml", TEMPORARY.into())],
            extra_yaml: extra.into(),
            users,
            ..AppOptions::default()
        },
    );
    let path = dir.path().join("lockout.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let store_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("url: "))
        .unwrap()
        .to_owned();
    let yaml = yaml
        .replace(&store_line, &format!("  url: \"{store_url}\""))
        .replace(
            "  scheduler_interval_ms: 100",
            "  scheduler_interval_ms: 100\n  claim_ttl_secs: 2",
        );
    std::fs::write(&path, yaml).unwrap();
    (fake, dir, path)
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    title: &str,
    email: &str,
    id: &str,
) -> Option<Value> {
    let r = http
        .post(format!("{base}/v1/alerts/generic"))
        .bearer_auth(SOURCE_TOKEN)
        .json(&json!({"id": id, "title": title, "severity": "high", "user": {"email": email}}))
        .send()
        .await
        .ok()?;
    if r.status() == 202 {
        r.json().await.ok()
    } else {
        None
    }
}

async fn wait_settled(store: &dyn Store, expected: usize) -> Vec<lockout::store::Action> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let actions = store.list_actions(None).await.unwrap();
        let open = actions
            .iter()
            .filter(|a| {
                matches!(
                    a.state,
                    ActionState::Ready
                        | ActionState::Running
                        | ActionState::Scheduled
                        | ActionState::Waiting
                )
            })
            .count();
        if actions.len() >= expected && open == 0 {
            return actions;
        }
        assert!(
            Instant::now() < deadline,
            "actions did not settle: {} total, {open} open",
            actions.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn suspends_per_user(
    fake: &lockout::sandbox::RunningFake,
) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for r in fake
        .handle
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":suspend"))
    {
        *m.entry(r.path.clone()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn two_replicas_on_one_postgres_behave_as_one_service() {
    if !postgres_or_skip("the replica test") {
        return;
    }
    let (fake, dir, config) = setup(
        fresh_pg_database(),
        "guards:\n  global_limit: { max: 30, per_secs: 3600 }\n",
    );
    let a = replica(&config, "replica-a").await;
    let b = replica(&config, "replica-b").await;
    let http = reqwest::Client::new();
    // A burst spread across both, each alert delivered twice (to both replicas).
    for i in 0..40 {
        let email = format!("user{i:04}@example.com");
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert!(
            post(
                &http,
                &first.base,
                "brute force",
                &email,
                &format!("burst-{i}")
            )
            .await
            .is_some()
        );
        post(
            &http,
            &second.base,
            "brute force",
            &email,
            &format!("burst-{i}"),
        )
        .await
        .unwrap();
    }
    let store = store_of(dir.path()).await;
    let actions = wait_settled(&store, 30).await;
    let audit = store.audit_chain(0, 100_000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.kind == "alert.received")
            .count(),
        40,
        "every alert stored once"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.kind == "alert.duplicate")
            .count(),
        40
    );
    let succeeded = actions
        .iter()
        .filter(|x| x.state == ActionState::Succeeded)
        .count();
    let held = actions
        .iter()
        .filter(|x| x.state == ActionState::PendingApproval)
        .count();
    assert_eq!(
        (succeeded, held),
        (30, 10),
        "the global limit held across both replicas"
    );
    let per_user = suspends_per_user(&fake);
    assert_eq!(per_user.len(), 30);
    assert!(
        per_user.values().all(|n| *n == 1),
        "every action executed once: {per_user:?}"
    );
    let workers: std::collections::HashSet<String> = audit
        .iter()
        .filter(|r| r.event.kind == "action.claimed")
        .filter_map(|r| {
            r.event.data["worker"]
                .as_str()
                .map(|w| w.split('/').next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(workers.len(), 2, "both replicas did work: {workers:?}");
    lockout::audit::verify(lockout::audit::GENESIS_HASH, &audit).expect("one verifiable chain");

    // An approval raised on one replica is decided on the other.
    let approval = store
        .list_approvals(Some(lockout::store::ApprovalState::Pending))
        .await
        .unwrap()
        .remove(0);
    let approver = token("lead@example.com", &["secops"]);
    let r = http
        .post(format!("{}/v1/approvals/{}/approve", b.base, approval.id))
        .bearer_auth(&approver)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/v1/approvals/{}/approve", a.base, approval.id))
        .bearer_auth(token("other@example.com", &["secops"]))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "decided once, whichever replica is asked");
    let r = http
        .post(format!("{}/v1/limits/reset", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Scheduled reactivations run once.
    for i in 50..55 {
        post(
            &http,
            if i % 2 == 0 { &a.base } else { &b.base },
            "temporary hold",
            &format!("user{i:04}@example.com"),
            &format!("tmp-{i}"),
        )
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reactivations = fake
            .handle
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(":reactivate"))
            .count();
        if reactivations >= 5 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let again = fake
                .handle
                .requests()
                .iter()
                .filter(|r| r.path.ends_with(":reactivate"))
                .count();
            assert_eq!(again, 5, "each scheduled reactivation ran once");
            break;
        }
        assert!(Instant::now() < deadline, "reactivations did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Kill one replica mid-burst: the other finishes its work after the claim expires.
    fake.handle.set_latency(Duration::from_millis(300));
    let mut acked = 0;
    let mut a = a;
    for i in 60..76 {
        if i == 66 {
            a.child.kill().unwrap(); // SIGKILL
            a.child.wait().unwrap();
        }
        let target = if i % 2 == 0 && i < 66 {
            &a.base
        } else {
            &b.base
        };
        if post(
            &http,
            target,
            "brute force",
            &format!("user{i:04}@example.com"),
            &format!("kill-{i}"),
        )
        .await
        .is_some()
        {
            acked += 1;
        }
    }
    fake.handle.set_latency(Duration::ZERO);
    assert_eq!(acked, 16);
    let before = store.list_actions(None).await.unwrap().len();
    let actions = wait_settled(&store, before).await;
    let audit = store.audit_chain(0, 100_000).await.unwrap();
    let kill_alerts = audit
        .iter()
        .filter(|r| r.event.kind == "alert.received" && r.event.data["title"] == "brute force")
        .count();
    assert_eq!(kill_alerts, 40 + 16, "no acknowledged alert is missing");
    let per_user = suspends_per_user(&fake);
    assert!(
        per_user.values().all(|n| *n == 1),
        "no action doubled: {per_user:?}"
    );
    // Executed: succeeded, or (a killed replica's call reached 1Password before it died) re-run
    // by the other, which read the user first and found the suspension made.
    let done_kill = actions
        .iter()
        .filter(|x| x.target.starts_with("user006") || x.target.starts_with("user007"))
        .filter(|x| {
            x.state == ActionState::Succeeded || (x.state == ActionState::Skipped && x.attempts > 1)
        })
        .count();
    assert_eq!(
        done_kill, 16,
        "every acknowledged alert's action was executed"
    );
    drop(b);
}

#[tokio::test]
async fn a_kill_9_during_a_burst_loses_nothing_on_sqlite() {
    let dir_for_db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir_for_db.path().join("burst.db").display());
    let (fake, dir, config) = setup(url, "");
    fake.handle.set_latency(Duration::from_millis(100));
    let mut r = replica(&config, "solo").await;
    let http = reqwest::Client::new();
    let mut acked = vec![];
    for i in 0..30 {
        if i == 15 {
            r.child.kill().unwrap();
            r.child.wait().unwrap();
            fake.handle.set_latency(Duration::ZERO);
            r = replica(&config, "solo").await;
        }
        if post(
            &http,
            &r.base,
            "brute force",
            &format!("user{i:04}@example.com"),
            &format!("k9-{i}"),
        )
        .await
        .is_some()
        {
            acked.push(i);
        }
    }
    let store = store_of(dir.path()).await;
    let actions = wait_settled(&store, acked.len()).await;
    let audit = store.audit_chain(0, 100_000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.kind == "alert.received")
            .count(),
        acked.len(),
        "no acknowledged alert is missing"
    );
    // Executed: succeeded, or, when the kill landed after 1Password made the change and
    // before it was recorded, found done by the instance that took the action over.
    let executed = |a: &&lockout::store::Action| {
        a.state == ActionState::Succeeded
            || (a.state == ActionState::Skipped
                && a.result
                    .as_ref()
                    .is_some_and(|r| r["skipped"] == "already suspended"))
    };
    assert_eq!(
        actions.iter().filter(executed).count(),
        acked.len(),
        "{actions:#?}"
    );
    assert!(
        suspends_per_user(&fake).values().all(|n| *n == 1),
        "no action doubled"
    );
    lockout::audit::verify(lockout::audit::GENESIS_HASH, &audit).unwrap();
}

/// A suppression made through one replica holds on the other (stored, not in memory), and
/// once removed there, the next alert acts on either.
#[tokio::test]
async fn replicas_agree_on_suppressions() {
    if !postgres_or_skip("the replica suppression test") {
        return;
    }
    let (fake, dir, config) = setup(fresh_pg_database(), "");
    let a = replica(&config, "replica-a").await;
    let b = replica(&config, "replica-b").await;
    let http = reqwest::Client::new();
    let analyst = token("ana@example.com", &["secops"]);
    let s: Value = http
        .post(format!("{}/v1/suppressions", a.base))
        .bearer_auth(&analyst)
        .json(
            &json!({"user": "bob@example.com", "reason": "pentest PT-12", "expires_in_secs": 600}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    // B reads suppressions again within a second.
    tokio::time::sleep(lockout::context::SUPPRESSIONS_TTL + Duration::from_millis(200)).await;
    let posted = post(&http, &b.base, "brute force", "bob@example.com", "on-b")
        .await
        .unwrap();
    let alert = posted["alert_ids"][0].as_str().unwrap().to_owned();
    let store = lockout::store::SqlStore::connect(
        &lockout::config::Settings::load(Some(&config))
            .unwrap()
            .0
            .store
            .url,
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let suppressed = store
            .query_audit(&lockout::store::AuditQuery {
                kind: Some("guard.suppressed".into()),
                alert_id: Some(alert.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(r) = suppressed.first() {
            assert_eq!(r.event.data["suppression_id"], id.as_str());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica B did not apply the suppression"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.list_actions(Some(&alert)).await.unwrap().is_empty());
    // Removed through B; the next alert, through A, acts.
    let r = http
        .delete(format!("{}/v1/suppressions/{id}", b.base))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    tokio::time::sleep(lockout::context::SUPPRESSIONS_TTL + Duration::from_millis(200)).await;
    post(&http, &a.base, "brute force", "bob@example.com", "on-a")
        .await
        .unwrap();
    let actions = wait_settled(&store, 1).await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].state, ActionState::Succeeded);
    drop((a, b, fake, dir));
}
