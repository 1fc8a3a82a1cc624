//! The fake rejects what the real API rejects: it is a test double, not a yes-machine.

use lockout::sandbox::{Permission, SeedUser, sample_users};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

struct Raw {
    base: String,
    account: String,
    token: String,
    http: reqwest::Client,
}

async fn raw(fake: &lockout::sandbox::RunningFake) -> Raw {
    let http = reqwest::Client::new();
    let resp: Value = http
        .post(format!("{}/v1/oauth/token", fake.base_url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["token_type"], "Bearer");
    assert_eq!(resp["expires_in"], 900);
    Raw {
        base: fake.base_url.clone(),
        account: fake.handle.account_id(),
        token: resp["access_token"].as_str().unwrap().into(),
        http,
    }
}

impl Raw {
    async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!(
                "{}/v1/accounts/{}/users{path_and_query}",
                self.base, self.account
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
    async fn post(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!(
                "{}/v1/accounts/{}/users{path}",
                self.base, self.account
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let fake = start_fake(fake_config(SeedUser::generated(30)));
    let api = raw(&fake).await;
    let (s, body) = api.get("?filter=user.isAdmin()").await;
    assert_eq!(s, 400);
    assert_eq!(body["code"], 3);
    assert!(body["details"].is_array());
    assert_eq!(api.get("?max_page_size=1001").await.0, 400);
    assert_eq!(api.get("?max_page_size=-1").await.0, 400);
    assert_eq!(api.get("?max_page_size=abc").await.0, 400);
    let (s, body) = api.get("").await;
    assert_eq!(s, 200);
    assert_eq!(
        body["results"].as_array().unwrap().len(),
        25,
        "default page size"
    );
    let token = body["next_page_token"].as_str().unwrap().to_owned();
    let (s, page2) = api
        .get(&format!("?page_token={}", urlencoding::encode(&token)))
        .await;
    assert_eq!(s, 200);
    assert_eq!(page2["results"].as_array().unwrap().len(), 5);
    assert_eq!(page2["next_page_token"], "", "last page");
    // A token from one filter is not valid for another, and a forged one is refused.
    let (s, _) = api
        .get(&format!(
            "?filter=user.isActive()&page_token={}",
            urlencoding::encode(&token)
        ))
        .await;
    assert_eq!(s, 400);
    use base64::Engine;
    let forged = base64::engine::general_purpose::STANDARD.encode("0::0000000000000000");
    assert_eq!(
        api.get(&format!("?page_token={}", urlencoding::encode(&forged)))
            .await
            .0,
        400
    );
    // gRPC-gateway accepts the camelCase spellings too (Elastic's connector sends them).
    let (s, body) = api.get("?maxPageSize=10").await;
    assert_eq!(s, 200);
    assert_eq!(body["results"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn users_have_the_documented_fields() {
    let fake = start_fake(fake_config(sample_users()));
    let api = raw(&fake).await;
    let (s, user) = api.get(&format!("/{ALICE}")).await;
    assert_eq!(s, 200);
    let mut keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "create_time",
            "display_name",
            "email",
            "id",
            "path",
            "state"
        ]
    );
    assert_eq!(
        user["path"],
        format!("accounts/{}/users/{ALICE}", api.account)
    );
    assert_eq!(api.get("/ZZZZZZZZZZZZZZZZZZZZZZZZZZ").await.0, 404);
}

#[tokio::test]
async fn suspend_and_reactivate_are_idempotent() {
    let fake = start_fake(fake_config(sample_users()));
    let api = raw(&fake).await;
    for _ in 0..2 {
        let (s, u) = api.post(&format!("/{ALICE}:suspend")).await;
        assert_eq!(
            (s, u["state"].as_str()),
            (StatusCode::OK, Some("SUSPENDED"))
        );
    }
    for _ in 0..2 {
        let (s, u) = api.post(&format!("/{ALICE}:reactivate")).await;
        assert_eq!((s, u["state"].as_str()), (StatusCode::OK, Some("ACTIVE")));
    }
    assert_eq!(api.post(&format!("/{ALICE}:delete")).await.0, 404);
    let (s, body) = api.post(&format!("/{WENDY_OWNER}:suspend")).await;
    assert_eq!(s, 403);
    assert_eq!(
        body,
        serde_json::json!({"code": 7, "message": "no_owner_remain", "details": []})
    );
}

#[tokio::test]
async fn tokens_and_permissions_are_enforced() {
    let fake = start_fake(fake_config(sample_users()));
    let api = raw(&fake).await;
    let anon = reqwest::Client::new()
        .get(format!("{}/v1/accounts/{}/users", api.base, api.account))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let other_account = api
        .http
        .get(format!("{}/v1/accounts/OTHERACCOUNT/users", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_account.status(), 404);
    fake.handle
        .set_permissions(CLIENT_ID, &[Permission::GetUser, Permission::ListUsers]);
    let (s, body) = api.post(&format!("/{ALICE}:suspend")).await;
    assert_eq!(s, 403);
    assert!(body["message"].as_str().unwrap().contains("permission"));
    fake.handle.set_permissions(CLIENT_ID, &Permission::ALL);
    fake.handle.set_provisioning_managed(true);
    assert_eq!(api.post(&format!("/{ALICE}:suspend")).await.0, 400);
}

#[tokio::test]
async fn the_token_endpoint_checks_the_request() {
    let fake = start_fake(fake_config(sample_users()));
    let http = reqwest::Client::new();
    let url = format!("{}/v1/oauth/token", fake.base_url);
    let no_auth = http
        .post(&url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    let wrong_grant = http
        .post(&url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), 400);
    assert_eq!(
        wrong_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let bad_scope = http
        .post(&url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), 400);
    fake.handle.set_token_endpoint_down(true);
    let down = http
        .post(&url)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
}
