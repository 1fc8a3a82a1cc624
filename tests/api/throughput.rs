//! Containment at the speed the API allows: many actions in flight within a bound, one round
//! trip where one is enough, and an adaptive limit that backs off under a 429 storm and
//! recovers, losing and doubling nothing.

use std::time::{Duration, Instant};

use lockout::sandbox::SeedUser;

use crate::helpers::*;

fn users(n: usize) -> Vec<SeedUser> {
    let mut u = lockout::sandbox::sample_users();
    u.extend(SeedUser::generated(n));
    u
}

async fn wait_all_suspended(app: &TestApp, seeds: &[SeedUser]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = seeds
            .iter()
            .filter(|u| {
                app.fake().user(u.id.as_str()).unwrap().state
                    != lockout::users_api::UserState::Suspended
            })
            .count();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} users not suspended within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn under_a_429_storm_the_limit_backs_off_then_recovers_and_nothing_is_lost_or_doubled() {
    let seeds = SeedUser::generated(24);
    let app = spawn_app_with(AppOptions {
        users: users(24),
        ..AppOptions::default()
    })
    .await;
    // A tenant that takes 8 requests a second.
    app.fake().set_rate_limit(Some(8));
    app.fake().reset_peak_in_flight();
    for u in &seeds {
        let r = app
            .post_alert("generic", &brute_force_alert(&u.email))
            .await;
        assert_eq!(r.status(), 202);
    }
    wait_all_suspended(&app, &seeds).await;
    // The fake counts an answer after its handler changed the user, on its own thread: wait
    // for lockout to have recorded every answer, which it can only do once it was sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.audit("kind=action.succeeded").await.len() < seeds.len() {
        assert!(Instant::now() < deadline, "not every action finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = app.ctx.users.in_flight();
    assert!(during.backoffs > 0, "the limit backed off: {during:?}");
    for u in &seeds {
        assert_eq!(
            app.fake().changes_ok(&format!("/users/{}:suspend", u.id)),
            1,
            "one successful :suspend for {}",
            u.email
        );
    }
    let records = app.audit("kind=action.failed").await;
    assert!(records.is_empty(), "no action failed: {records:#?}");
    assert!(app.fake().peak_in_flight() <= during.max, "{during:?}");
    // The storm passes: answers are good again and the limit grows back to the bound.
    app.fake().set_rate_limit(None);
    let log = lockout::users_api::CallLog::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.ctx.users.in_flight().limit < during.max {
        app.ctx.users.get_user(&seeds[0].id, &log).await.unwrap();
        assert!(Instant::now() < deadline, "{:?}", app.ctx.users.in_flight());
    }
}

#[tokio::test]
async fn a_suspension_by_a_known_user_is_one_round_trip_and_says_why() {
    let app = spawn_app().await;
    // The directory learns the account (one listing), then each action is one call.
    let id = app
        .post_alert_id("generic", &brute_force_alert("bob@example.com"))
        .await;
    let records = app.wait_for_audit("action.succeeded", &id).await;
    let done = records
        .iter()
        .find(|r| r.event.kind == "action.succeeded")
        .unwrap();
    assert!(
        done.event.data["read_skipped"]
            .as_str()
            .is_some_and(|w| w.contains("idempotent")),
        "{done:#?}"
    );
    let calls: Vec<&str> = records
        .iter()
        .filter(|r| r.event.kind == "api.call")
        .map(|r| r.event.data["operation"].as_str().unwrap())
        .filter(|op| *op != "list_users")
        .collect();
    assert_eq!(calls, vec!["suspend_user"], "no get_user before it");
}

#[tokio::test]
async fn a_require_state_guard_still_reads_first() {
    let playbook = r#"
name: contain
on:
  when: "alert.title.contains('brute')"
guards:
  require_state: ACTIVE
steps:
  - suspend: {}
"#;
    let app = spawn_app_with(AppOptions {
        playbooks: vec![("contain.yaml", playbook.into())],
        ..AppOptions::default()
    })
    .await;
    let id = app
        .post_alert_id("generic", &brute_force_alert("bob@example.com"))
        .await;
    let records = app.wait_for_audit("action.succeeded", &id).await;
    let ops: Vec<&str> = records
        .iter()
        .filter(|r| r.event.kind == "api.call")
        .map(|r| r.event.data["operation"].as_str().unwrap())
        .filter(|op| *op != "list_users")
        .collect();
    assert_eq!(ops, vec!["get_user", "suspend_user"]);
}
