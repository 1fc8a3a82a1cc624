//! The Users API client against the fake, over real sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockout::domain::{Email, UserId};
use lockout::sandbox::{BasicDecoding, FakeClient, SeedUser, sample_users};
use lockout::users_api::{CallLog, ClientAuth, Directory, StateFilter, UserState, UsersApiError};

use crate::helpers::*;

fn alice() -> UserId {
    UserId::parse(ALICE).unwrap()
}

#[tokio::test]
async fn fifty_concurrent_requests_share_one_token_request() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let log = Arc::new(CallLog::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (client, log) = (client.clone(), log.clone());
        tasks.spawn(async move { client.get_user(&alice(), &log).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().email, "alice@example.com");
    }
    assert_eq!(fake.handle.token_requests(), 1);
    assert_eq!(client.token_requests(), 1);
    assert_eq!(
        fake.handle.requests_to(&format!("/users/{ALICE}")).len(),
        50
    );
}

#[tokio::test]
async fn the_token_request_is_client_credentials_with_basic_auth() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    client
        .get_user(&alice(), &CallLog::default())
        .await
        .unwrap();
    let token_req = &fake.handle.requests_to("/v1/oauth/token")[0];
    assert_eq!(token_req.body, "grant_type=client_credentials&scope=openid");
    assert_eq!(
        token_req.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    // Plain Base64 of id:secret, as 1Password documents it.
    assert_eq!(
        token_req.authorization.as_deref(),
        Some("Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ=")
    );
    let get = &fake.handle.requests_to(&format!("/users/{ALICE}"))[0];
    let bearer = get
        .authorization
        .as_deref()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert!(fake.handle.issued(bearer));
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    let fake = start_fake(fake_config(sample_users()));
    fake.handle.set_token_lifetime(Duration::from_secs(2));
    let mut cfg = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic)
        .config()
        .clone();
    cfg.token_refresh_margin = Duration::from_secs(1);
    let client = lockout::users_api::UsersApiClient::new(cfg).unwrap();
    let log = CallLog::default();
    client.get_user(&alice(), &log).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.get_user(&alice(), &log).await.unwrap();
    assert_eq!(
        fake.handle.token_requests(),
        2,
        "a new token after the refresh point"
    );
    // No request was refused: the refresh happened before expiry, not after a 401.
    assert!(log.take().iter().all(|c| c.status == Some(200)));
}

#[tokio::test]
async fn an_expired_token_is_replaced_after_one_401() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let log = CallLog::default();
    client.get_user(&alice(), &log).await.unwrap();
    fake.handle.expire_tokens();
    client.get_user(&alice(), &log).await.unwrap();
    assert_eq!(fake.handle.token_requests(), 2);
    let statuses: Vec<_> = log
        .take()
        .iter()
        .map(|c| (c.operation.clone(), c.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("token".into(), Some(200)),
            ("get_user".into(), Some(200)),
            ("get_user".into(), Some(401)),
            ("token".into(), Some(200)),
            ("get_user".into(), Some(200)),
        ]
    );
}

#[tokio::test]
async fn a_revoked_token_triggers_exactly_one_refresh_and_retry() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    client
        .get_user(&alice(), &CallLog::default())
        .await
        .unwrap();
    fake.handle.revoke_tokens();
    fake.handle.clear_requests();
    let user = client
        .suspend_user(&alice(), &CallLog::default())
        .await
        .unwrap();
    assert_eq!(user.state, UserState::Suspended);
    assert_eq!(fake.handle.token_requests(), 1);
    assert_eq!(
        fake.handle
            .requests_to(&format!("/users/{ALICE}:suspend"))
            .len(),
        2
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    client
        .get_user(&alice(), &CallLog::default())
        .await
        .unwrap();
    fake.handle.rate_limit_next(1, Some(1));
    let started = Instant::now();
    let log = CallLog::default();
    client.get_user(&alice(), &log).await.unwrap();
    // Behaviour, not speed: the client must not come back before the server said it may.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    let statuses: Vec<_> = log.take().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(200)]);
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    fake.handle.fail_next(2, 500);
    client
        .get_user(&alice(), &CallLog::default())
        .await
        .expect("third attempt succeeds");
    assert_eq!(fake.handle.requests_to(&format!("/users/{ALICE}")).len(), 3);

    fake.handle.clear_requests();
    fake.handle.fail_next(100, 503);
    let err = client
        .get_user(&alice(), &CallLog::default())
        .await
        .unwrap_err();
    match &err {
        UsersApiError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 4);
            assert!(
                matches!(**last, UsersApiError::Server { status: 503, .. }),
                "{last:?}"
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(fake.handle.requests_to(&format!("/users/{ALICE}")).len(), 4);
}

#[tokio::test]
async fn other_4xx_are_not_retried() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let unknown = UserId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
    let err = client
        .get_user(&unknown, &CallLog::default())
        .await
        .unwrap_err();
    assert!(matches!(err, UsersApiError::NotFound { .. }), "{err:?}");
    assert_eq!(
        fake.handle
            .requests_to("/users/ZZZZZZZZZZZZZZZZZZZZZZZZZZ")
            .len(),
        1
    );
}

#[tokio::test]
async fn the_last_owner_and_externally_managed_admins_cannot_be_suspended() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let err = client
        .suspend_user(&UserId::parse(WENDY_OWNER).unwrap(), &CallLog::default())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UsersApiError::CannotActOnUser {
            message: "no_owner_remain".into()
        }
    );
    assert!(err.is_permanent());
    let err = client
        .suspend_user(&UserId::parse(ERIN_EAM).unwrap(), &CallLog::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UsersApiError::CannotActOnUser { .. }),
        "{err:?}"
    );
    assert_eq!(
        fake.handle
            .requests_to(&format!("/users/{WENDY_OWNER}:suspend"))
            .len(),
        1,
        "never retried"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_error() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, "not-the-secret", ClientAuth::Basic);
    let err = client
        .check_credentials(&CallLog::default())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UsersApiError::InvalidClient {
            status: 401,
            message: "invalid_client".into()
        }
    );
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn two_hundred_fifty_users_come_back_whole_across_pages() {
    let fake = start_fake(fake_config(SeedUser::generated(250)));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let log = CallLog::default();
    use futures::TryStreamExt;
    let users: Vec<_> = client
        .list_users(None, 100, &log)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(users.len(), 250);
    let unique: std::collections::HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(fake.handle.requests_to("/users").len(), 3);
    let suspended = client
        .list_all_users(Some(StateFilter::Suspended), &log)
        .await
        .unwrap();
    assert!(suspended.is_empty());
}

#[tokio::test]
async fn the_directory_does_not_repage_for_every_lookup() {
    let fake = start_fake(fake_config(SeedUser::generated(120)));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let dir = Directory::new(client, Duration::from_secs(300), Duration::from_secs(30));
    let log = CallLog::default();
    for i in 0..40 {
        let email = Email::parse(&format!("user{:04}@example.com", i % 10)).unwrap();
        assert!(dir.find_by_email(&email, &log).await.unwrap().is_some());
    }
    // Unknown addresses do not re-page either, within the miss interval.
    for _ in 0..10 {
        let nobody = Email::parse("nobody@example.com").unwrap();
        assert!(dir.find_by_email(&nobody, &log).await.unwrap().is_none());
    }
    assert_eq!(dir.refreshes(), 1);
    assert_eq!(
        fake.handle.requests_to("/users").len(),
        1,
        "120 users fit one page of 1000"
    );
}

#[tokio::test]
async fn each_client_auth_mode_works_against_a_server_that_expects_it() {
    let secret = "s3cr+t/with=chars";
    for (auth, decoding, allow_post) in [
        (ClientAuth::Basic, BasicDecoding::Raw, false),
        (ClientAuth::BasicRfc6749, BasicDecoding::Rfc6749, false),
        (ClientAuth::Post, BasicDecoding::Either, true),
    ] {
        let mut cfg = fake_config(sample_users());
        cfg.clients = vec![FakeClient::new(CLIENT_ID, secret)];
        cfg.basic_decoding = decoding;
        cfg.allow_client_secret_post = allow_post;
        let fake = start_fake(cfg);
        let client = client_for(&fake, secret, auth);
        client
            .check_credentials(&CallLog::default())
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
    }
    // And the mismatches fail clearly instead of silently.
    let mut cfg = fake_config(sample_users());
    cfg.clients = vec![FakeClient::new(CLIENT_ID, secret)];
    cfg.basic_decoding = BasicDecoding::Rfc6749;
    let fake = start_fake(cfg);
    let err = client_for(&fake, secret, ClientAuth::Basic)
        .check_credentials(&CallLog::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        UsersApiError::InvalidClient { status: 401, .. }
    ));
    // 1Password requires client_secret_basic: the fake refuses the form body by default.
    let fake = start_fake(fake_config(sample_users()));
    let err = client_for(&fake, CLIENT_SECRET, ClientAuth::Post)
        .check_credentials(&CallLog::default())
        .await
        .unwrap_err();
    assert!(matches!(err, UsersApiError::InvalidClient { .. }));
}

#[tokio::test]
async fn the_v1beta1_routes_work_too() {
    let fake = start_fake(fake_config(sample_users()));
    let mut cfg = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic)
        .config()
        .clone();
    cfg.api_version = lockout::users_api::ApiVersion::V1beta1;
    cfg.token_url = cfg.api_version.default_token_url(&fake.base_url);
    cfg.revoke_url = cfg.api_version.default_revoke_url(&fake.base_url);
    let client = lockout::users_api::UsersApiClient::new(cfg).unwrap();
    let log = CallLog::default();
    client.get_user(&alice(), &log).await.unwrap();
    client.revoke_token(&log).await.unwrap();
    let paths: Vec<_> = fake
        .handle
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            "/v1beta1/users/oauth2/token".to_string(),
            format!(
                "/v1beta1/accounts/{}/users/{ALICE}",
                fake.handle.account_id()
            ),
            "/v1beta1/users/oauth2/revoke".to_string(),
        ]
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_the_api() {
    let fake = start_fake(fake_config(sample_users()));
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    client
        .get_user(&alice(), &CallLog::default())
        .await
        .unwrap();
    let token = fake.handle.requests_to(&format!("/users/{ALICE}"))[0]
        .authorization
        .clone()
        .unwrap();
    client.revoke_token(&CallLog::default()).await.unwrap();
    let status = reqwest::Client::new()
        .get(format!(
            "{}/v1/accounts/{}/users/{ALICE}",
            fake.base_url,
            fake.handle.account_id()
        ))
        .header("authorization", token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

/// A user in a state a newer API added (and fields the contract does not name).
fn with_unknown_state() -> Vec<SeedUser> {
    let mut users = sample_users();
    users[1].state = UserState::Other("RECOVERY_PENDING".into());
    users
}

#[tokio::test]
async fn a_newer_schema_is_read_whole_and_unknown_values_are_kept() {
    let mut cfg = fake_config(with_unknown_state());
    cfg.newer_schema = true;
    let fake = start_fake(cfg);
    let client = client_for(&fake, CLIENT_SECRET, ClientAuth::Basic);
    let users = client
        .list_all_users(None, &CallLog::default())
        .await
        .expect("one unknown state does not fail the list");
    assert_eq!(users.len(), sample_users().len());
    let odd = users
        .iter()
        .find(|u| !u.state.is_known() && u.state != UserState::StateUnspecified)
        .expect("the unknown state is kept");
    assert_eq!(odd.state.as_str(), "RECOVERY_PENDING");
    assert_eq!(odd.unknown["type"], "GUEST_PLUS");
    // Shown as received.
    let shown = serde_json::to_value(odd).unwrap();
    assert_eq!(shown["state"], "RECOVERY_PENDING");
    assert_eq!(shown["mfa"]["enrolled"], true);
}

#[tokio::test]
async fn a_user_in_an_unknown_state_is_never_acted_on() {
    let app = spawn_app_with(AppOptions {
        users: with_unknown_state(),
        ..AppOptions::default()
    })
    .await;
    let odd = with_unknown_state()[1].clone();
    let id = app
        .post_alert_id("generic", &brute_force_alert(&odd.email))
        .await;
    let records = app.wait_for_audit("action.skipped", &id).await;
    let skipped = records
        .iter()
        .find(|r| r.event.kind == "action.skipped")
        .unwrap();
    assert_eq!(skipped.event.data["unknown_state"], true, "{skipped:?}");
    assert!(
        skipped.event.data["reason"]
            .as_str()
            .unwrap()
            .contains("RECOVERY_PENDING")
    );
    assert_eq!(
        app.fake().requests_to(&format!("{}:suspend", odd.id)).len(),
        0
    );
}
