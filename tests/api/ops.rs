//! What an SRE touches: the OpenAPI contract (no drift, no missing route), Swagger UI, metrics
//! after an end-to-end run, the Dockerfile, `config check`.

use std::collections::BTreeSet;

use lockout::http::openapi::{ROUTES, document};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_served_openapi_matches_the_committed_file_and_covers_every_route() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    assert_eq!(served, document());
    let documented: BTreeSet<(String, String)> = served["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // The document against what the server answers: an undeclared method on a documented
    // path answers 405 (the path is served), and its Allow header, which the router builds
    // from the routes it really has, names exactly the documented methods.
    let mut by_path: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (method, path) in &documented {
        by_path
            .entry(path.as_str())
            .or_default()
            .insert(method.to_ascii_uppercase());
    }
    for (template, methods) in by_path {
        let path = template
            .replace("{source}", "generic")
            .replace("{id}", "apr_x")
            .replace("{user}", ALICE)
            .replace("{name}", "suspend-on-brute-force");
        let r = app
            .http
            .put(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "PUT {path}");
        let allowed: BTreeSet<String> = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty() && m != "HEAD")
            .collect();
        assert_eq!(allowed, methods, "{template}: served methods vs documented");
    }
    let unknown = app
        .http
        .get(format!("{}/v1/nothing-here", app.address))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(unknown, 404);
    let docs = app
        .http
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "no CDN");
}

#[tokio::test]
async fn metrics_count_an_end_to_end_run() {
    let app = spawn_app().await;
    let resp: Value = app
        .post_alert("generic", &brute_force_alert("alice@example.com"))
        .await
        .json()
        .await
        .unwrap();
    let id = resp["alert_ids"][0].as_str().unwrap().to_owned();
    app.post_alert("generic", &serde_json::json!({"title": "brute force", "severity": "high", "user": {"email": "alice@example.com"}, "id": "d1"})).await;
    app.post_alert("generic", &serde_json::json!({"title": "brute force", "severity": "high", "user": {"email": "alice@example.com"}, "id": "d1"})).await;
    app.http
        .post(format!("{}/v1/alerts/generic", app.address))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    app.wait_for_audit("action.succeeded", &id).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "lockout_alerts_received_total{source=\"generic\"} 2",
        "lockout_alerts_duplicate_total{source=\"generic\"} 1",
        "lockout_alerts_rejected_total{source=\"generic\",reason=\"unauthenticated\"} 1",
        "lockout_actions_total{kind=\"suspend\",outcome=\"succeeded\"} 1",
        "lockout_users_api_calls_total{operation=\"suspend_user\",status=\"200\"} 1",
        "lockout_token_requests_total 1",
        "lockout_dedup_forgotten_total 0",
        "lockout_queue_depth{state=\"pending_approval\"} 0",
        "lockout_oldest_pending_approval_age_seconds 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains(
            "lockout_users_api_call_duration_seconds_count{operation=\"suspend_user\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("lockout_plans_total"), "{text}");
}

#[test]
fn the_dockerfile_copies_only_what_exists_and_runs_unprivileged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("FROM rust:1.95"), "a Rust 1.95 builder");
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("VOLUME"));
    assert!(dockerfile.contains("ca-certificates"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root"), "{user}");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                root.join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
    assert!(root.join(".dockerignore").exists());
}

#[test]
fn config_check_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "server:\n  admin_token: admin-secret-value\napprovals:\n  hs256_secret: approver-secret-value\nusers_api:\n  base_url: https://api.1password.com\n  account_id: ACC\n  client_id: cid\n  client_secret: very-secret-value\nsources:\n  s:\n    auth: { type: bearer, token: source-secret-value }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(dir.path().join("c.yaml"))
        .args(["config", "check"])
        .env("LOCKOUT__SERVER__LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0.0.0.0:9999"),
        "env overrides apply: {stdout}"
    );
    assert!(
        !stdout.contains("very-secret-value")
            && !stdout.contains("source-secret-value")
            && !stdout.contains("admin-secret-value")
            && !stdout.contains("approver-secret-value"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# mode: live (users_api configured in"),
        "{stdout}"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
        .arg("--config")
        .arg(dir.path().join("c.yaml"))
        .args(["config", "check"])
        .env("LOCKOUT__STORE__URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("store.url"));
}

/// `lockout` run in a folder with an empty `playbooks/` (and no ./lockout.yaml), with exactly
/// these LOCKOUT variables.
fn lockout_in_empty_dir(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lockout"));
    cmd.current_dir(dir.path()).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LOCKOUT")) {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied());
    cmd.output().unwrap()
}

const LIVE_FROM_ENV: [(&str, &str); 4] = [
    ("LOCKOUT__USERS_API__BASE_URL", "https://api.1password.com"),
    ("LOCKOUT__USERS_API__ACCOUNT_ID", "ACC"),
    ("LOCKOUT__USERS_API__CLIENT_ID", "cid"),
    ("LOCKOUT__USERS_API__CLIENT_SECRET", "secret"),
];

#[test]
fn live_mode_from_the_environment_never_runs_on_sandbox_credentials() {
    // Missing credentials: refused at start, naming the key, by `config check` and `serve`.
    for args in [&["config", "check"][..], &["serve"][..]] {
        let out = lockout_in_empty_dir(args, &LIVE_FROM_ENV);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started: {stderr}");
        assert!(
            stderr.contains("server.admin_token is required in live mode"),
            "{stderr}"
        );
    }
    // The sandbox's published admin token is refused in live mode.
    let mut vars = LIVE_FROM_ENV.to_vec();
    vars.push(("LOCKOUT__SERVER__ADMIN_TOKEN", "sandbox-admin"));
    vars.push(("LOCKOUT__APPROVALS__HS256_SECRET", "my-own-approver-secret"));
    let out = lockout_in_empty_dir(&["serve"], &vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("server.admin_token holds the sandbox"),
        "{stderr}"
    );
    // Complete: live, with no sandbox source, admin token or signing secret.
    let mut vars = LIVE_FROM_ENV.to_vec();
    vars.push(("LOCKOUT__SERVER__ADMIN_TOKEN", "my-own-admin-token"));
    vars.push(("LOCKOUT__APPROVALS__HS256_SECRET", "my-own-approver-secret"));
    let out = lockout_in_empty_dir(&["config", "check"], &vars);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# mode: live (users_api from LOCKOUT__USERS_API__*"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("sandbox-token") && !stdout.contains("generic"),
        "{stdout}"
    );
    // A single underscore after the prefix is not ignored.
    let out = lockout_in_empty_dir(
        &["config", "check"],
        &[("LOCKOUT_USERS_API__BASE_URL", "https://api.1password.com")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOCKOUT_USERS_API__BASE_URL"));
    // No file, no users_api: the sandbox, and it says why.
    let out = lockout_in_empty_dir(&["config", "check"], &[]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("# mode: sandbox (no config file"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn config_check_applies_serves_checks_and_redacts_every_secret_and_url_password() {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    std::fs::write(
        playbooks.join("p.yaml"),
        "name: p\non:\n  when: \"true\"\nsteps:\n  - suspend: { approval: { approvers: [secops] } }\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.secret");
    std::fs::write(&empty, "\n").unwrap();
    let check = |yaml: String| {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_lockout"))
            .arg("--config")
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap()
    };
    let base = format!(
        "store:\n  url: \"postgres://lockout:hunter2@127.0.0.1:5432/lockout\"\nplaybooks:\n  dir: \"{}\"\n",
        playbooks.display()
    );
    // A playbook that waits for approval with no approver key: nobody could decide.
    let out = check(base.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("playbook p can wait for an approval"),
        "{stderr}"
    );
    // An empty secret file.
    let out = check(format!(
        "{base}approvals:\n  hs256_secret_file: \"{}\"\n",
        empty.display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is empty"), "{stderr}");
    // Valid: printed as YAML, the URL's password redacted.
    let out = check(format!(
        "{base}approvals:\n  hs256_secret: \"approver-secret-value\"\n"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("url: postgres://lockout:[REDACTED]@127.0.0.1:5432/lockout")
            || stdout.contains("postgres://lockout:[REDACTED]@"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("approver-secret-value"),
        "{stdout}"
    );
    assert!(stdout.contains("hs256_secret: \"[REDACTED]\""), "{stdout}");
}

/// The top-level modules form no import cycle (tests excepted): each names its dependencies
/// as `crate::module`, and the graph they make is acyclic.
#[test]
fn top_level_modules_import_each_other_without_cycles() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut modules: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = vec![];
        let mut stack = vec![path.clone()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
        modules.entry(name).or_default().extend(files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, files) in &modules {
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for part in code.split("crate::").skip(1) {
                let dep: String = part
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if &dep != m && names.contains(&dep) {
                    deps.entry(m.clone()).or_default().insert(dep);
                }
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_owned());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in &names {
        visit(m, &deps, &mut vec![], &mut done);
    }
    assert!(deps.len() > 10, "the scan found the modules: {deps:?}");
    // Configuration holds settings only: domain modules parse them, never the other way.
    assert_eq!(
        deps.get("config"),
        None,
        "config imports a domain module: {deps:?}"
    );
    // The store's backends build on its shared core, never on each other.
    let store = src.join("store");
    for (file, other) in [
        ("sqlite_intake.rs", "postgres_intake"),
        ("postgres_intake.rs", "sqlite_intake"),
    ] {
        let text = std::fs::read_to_string(store.join(file)).unwrap();
        assert!(!text.contains(other), "{file} mentions {other}");
        // The SQLite intake writes with rusqlite on its own thread, not through the sqlx store.
        if file.starts_with("sqlite") {
            assert!(!text.contains("super::sql"), "{file} uses the sqlx store");
        }
    }
}

/// Admins are people: the admin endpoints take an approver-style JWT with an admin role, and
/// every admin action's record names who acted — the person, or the named bootstrap token.
#[tokio::test]
async fn admin_actions_name_the_person_or_the_token() {
    let app = spawn_app_with(AppOptions {
        extra_server: "  named_admin_tokens: { ci-bootstrap: \"ci-bootstrap-token-0123456789\" }"
            .into(),
        ..AppOptions::default()
    })
    .await;
    let reload = |bearer: String| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/v1/playbooks/reload", app.address))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        reload(token("ada@example.com", &["lockout-admin"])).await,
        200
    );
    assert_eq!(reload("ci-bootstrap-token-0123456789".into()).await, 200);
    assert_eq!(reload(ADMIN_TOKEN.into()).await, 200);
    // An approver is not an admin; a forged token is nobody.
    assert_eq!(reload(token("ana@example.com", &["secops"])).await, 403);
    assert_eq!(reload("not-a-token".into()).await, 401);
    let actors: Vec<String> = app
        .audit("kind=playbooks.reloaded")
        .await
        .into_iter()
        .map(|r| r.event.actor)
        .collect();
    assert_eq!(
        actors,
        ["ada@example.com", "admin:ci-bootstrap", "admin:admin-token"]
    );
    // A person reads the audit trail as an admin too.
    let (status, _) = app
        .get_json(
            "/v1/audit?limit=1",
            &token("ada@example.com", &["lockout-admin"]),
        )
        .await;
    assert_eq!(status, 200);
}
