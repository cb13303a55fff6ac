//! Talking to a running TiGateway admin API as its tests' operator would.

use serde_json::{json, Value};

/// Logs in at an admin API over HTTP and returns the session token. `api` is the API's root,
/// e.g. `http://127.0.0.1:9095/api/v1`. A refused login panics with the admin's status and
/// answer, so a test fails where the cause is rather than at its first authenticated call.
pub async fn admin_login(api: &str, user: &str, password: &str) -> String {
    // No proxy: the admin is on loopback, and an HTTP(S)_PROXY in the environment must not
    // take the test's requests elsewhere.
    let client = reqwest::Client::builder().no_proxy().build().expect("HTTP client");
    let r = client
        .post(format!("{api}/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("login of {user} at {api}: {e}"));
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, reqwest::StatusCode::OK, "login of {user} at {api}: {body}");
    body["token"].as_str().unwrap_or_else(|| panic!("login of {user} at {api}: no token in {body}")).to_string()
}
