//! `mercato up` on a fresh data dir: health, metrics, OpenAPI, problems, start-up failures.

use std::process::{Command, Stdio};

use crate::{Platform, free_port};

#[tokio::test]
async fn up_on_a_fresh_data_dir_serves_health_metrics_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh/data");
    let platform = Platform::start(&data, Vec::new()).await;
    let client = &platform.client;

    let health = client.get(platform.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["services"]["analytics"]["status"], "up", "{body}");
    assert!(data.join("analytics.db").exists());

    // Generate a little traffic so route metrics exist.
    let tracked = client
        .post(platform.url("/api/v1/analytics/track"))
        .json(&serde_json::json!({"event": "page_viewed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tracked.status(), 202);
    let text = client
        .get(platform.url("/metrics/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    let text = text.text().await.unwrap();
    assert_valid_prometheus(&text);
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );

    let openapi: serde_json::Value = client
        .get(platform.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3."),
        "{openapi}"
    );
    assert!(
        openapi["paths"]["/api/v1/analytics/track"].is_object(),
        "{openapi}"
    );

    let nope = client.get(platform.url("/nope")).send().await.unwrap();
    assert_eq!(nope.status(), 404);
    assert_eq!(nope.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = nope.json().await.unwrap();
    assert_eq!(problem["status"], 404);

    let bad = client
        .post(platform.url("/api/track"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.status(),
        404,
        "`/api/track` is no route; only /api/analytics/track is"
    );
    let bad = client
        .post(platform.url("/api/analytics/track"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
}

/// Every sample line is `name{labels} value` with a numeric value.
fn assert_valid_prometheus(text: &str) {
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
            "{line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
    }
}

#[tokio::test]
async fn a_taken_port_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
}

#[test]
fn a_malformed_rate_limit_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args([
            "up",
            "--port",
            &crate::free_port().to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GATEWAY_RATE_LIMITS", "auth=five/10")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GATEWAY_RATE_LIMITS"), "{stderr}");
}

#[tokio::test]
async fn an_unwritable_data_dir_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["up", "--port", &free_port().to_string(), "--data-dir"])
        .arg(file.join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not writable"), "{stderr}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["up", "--help"],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["bench", "--help"],
        &["inventory", "verify", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_the_platform_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut platform = Platform::start(dir.path(), Vec::new()).await;
    crate::terminate(&platform.child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = platform.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn identity_tokens_work_across_services_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "MERCATO_BOOTSTRAP_ADMIN_EMAIL".to_owned(),
            "ops@example.com".to_owned(),
        ),
        (
            "MERCATO_BOOTSTRAP_ADMIN_PASSWORD".to_owned(),
            "a long admin passphrase".to_owned(),
        ),
    ];
    let platform = Platform::start(dir.path(), env).await;
    let client = &platform.client;

    let health: serde_json::Value = client
        .get(platform.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["services"]["identity"]["status"], "up", "{health}");
    let jwks: serde_json::Value = client
        .get(platform.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519", "{jwks}");

    // A customer signs up through the unversioned alias; analytics knows the token but not
    // the role.
    let registered = client
        .post(platform.url("/api/auth/register"))
        .json(&serde_json::json!({
            "email": "shopper@example.com",
            "password": "correct horse battery staple",
            "name": "Shopper"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let registered: serde_json::Value = registered.json().await.unwrap();
    let customer = registered["access_token"].as_str().unwrap();
    let events = platform.url("/api/v1/analytics/events");
    let denied = client
        .get(&events)
        .bearer_auth(customer)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);

    let login = client
        .post(platform.url("/api/v1/auth/login"))
        .json(
            &serde_json::json!({"email": "ops@example.com", "password": "a long admin passphrase"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login: serde_json::Value = login.json().await.unwrap();
    let admin = login["access_token"].as_str().unwrap();
    let allowed = client.get(&events).bearer_auth(admin).send().await.unwrap();
    assert_eq!(allowed.status(), 200);

    // API keys issued by identity authenticate on another service, within their scopes.
    let mut keys = Vec::new();
    for scopes in [&["admin"][..], &["read"]] {
        let created = client
            .post(platform.url("/api/v1/api-keys"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"name": "reporting", "scopes": scopes}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: serde_json::Value = created.json().await.unwrap();
        keys.push(created["secret"].as_str().unwrap().to_owned());
    }
    let with_admin_key = client
        .get(&events)
        .bearer_auth(&keys[0])
        .send()
        .await
        .unwrap();
    assert_eq!(with_admin_key.status(), 200);
    let with_read_key = client
        .get(&events)
        .bearer_auth(&keys[1])
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_read_key.status(),
        403,
        "a read key carries no staff role"
    );
}

async fn search_total(platform: &Platform) -> u64 {
    let search = platform
        .client
        .get(platform.url("/api/v1/search?q="))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    let body: serde_json::Value = search.json().await.unwrap();
    body["total"].as_u64().unwrap()
}

#[tokio::test]
async fn seeded_products_are_listed_and_searchable_after_a_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    for args in [
        &["seed", "--products", "60", "--data-dir", &data][..],
        &["reindex", "--data-dir", &data],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let platform = Platform::start(dir.path(), Vec::new()).await;
    let products: serde_json::Value = platform
        .client
        .get(platform.url("/api/v1/products?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = products["data"].as_array().unwrap().len() as u64;
    assert!(listed > 0, "{products}");
    assert_eq!(
        search_total(&platform).await,
        listed,
        "search and listing disagree"
    );
}

#[tokio::test]
async fn up_with_demo_starts_with_a_searchable_shop() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_port().to_string();
    let data = dir.path().display().to_string();
    let mut child =
        crate::spawn_mercato(&["up", "--demo", "--port", &port, "--data-dir", &data], &[]);
    let base = format!("http://127.0.0.1:{port}");
    crate::wait_ok(&mut child, &format!("{base}/health")).await;
    let platform = Platform {
        child,
        port: port.parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        env: Vec::new(),
        client: reqwest::Client::new(),
    };
    assert!(search_total(&platform).await > 0);
    // The demo stock went through the inventory ledger.
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["inventory", "verify", "--data-dir", &data])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let levels: u64 = stdout
        .split("inventory: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(levels > 100, "{stdout}");
}

/// Logs the bootstrap admin in and returns a token.
async fn admin_token(platform: &Platform) -> String {
    let login: serde_json::Value = platform
        .client
        .post(platform.url("/api/v1/auth/login"))
        .json(
            &serde_json::json!({"email": "ops@example.com", "password": "a long admin passphrase"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_owned()
}

fn bootstrap_admin() -> Vec<(String, String)> {
    vec![
        (
            "MERCATO_BOOTSTRAP_ADMIN_EMAIL".to_owned(),
            "ops@example.com".to_owned(),
        ),
        (
            "MERCATO_BOOTSTRAP_ADMIN_PASSWORD".to_owned(),
            "a long admin passphrase".to_owned(),
        ),
    ]
}

#[tokio::test]
async fn stock_received_in_inventory_reaches_the_catalog_and_the_ledger_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let env = bootstrap_admin();
    let platform = Platform::start(dir.path(), env.clone()).await;
    let client = &platform.client;
    let admin = admin_token(&platform).await;
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(platform.url(path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };

    let product: serde_json::Value = post(
        "/api/v1/products",
        serde_json::json!({"title": "Stocked tee", "status": "active",
            "variants": [{"sku": "E2E-TEE", "prices": [{"amount": 1500, "currency": "EUR"}]}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let product_id = product["id"].as_str().unwrap().to_owned();
    let warehouse: serde_json::Value = post(
        "/api/v1/warehouses",
        serde_json::json!({"code": "MAIN", "name": "Main", "country": "DE"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let received = post(
        "/api/v1/stock/adjustments",
        serde_json::json!({"sku": "E2E-TEE", "warehouse_id": warehouse["id"], "delta": 12, "reason": "receipt"}),
    )
    .await
    .unwrap();
    assert_eq!(received.status(), 201);
    let reserved = post(
        "/api/v1/reservations",
        serde_json::json!({"reference": "ord_e2e", "lines": [{"sku": "E2E-TEE", "quantity": 5}]}),
    )
    .await
    .unwrap();
    assert_eq!(reserved.status(), 201);

    // Catalog follows inventory.stock.updated through the bus.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let product: serde_json::Value = client
            .get(platform.url(&format!("/api/v1/products/{product_id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if product["variants"][0]["available"] == 7 {
            assert_eq!(product["in_stock"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "catalog never saw the stock: {product}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let data_dir = dir.path().to_str().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["inventory", "verify", "--data-dir", data_dir])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 stock levels, 2 movements, 0 mismatches"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_card_payment_goes_through_the_gateway_with_the_test_provider() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), bootstrap_admin()).await;
    let client = &platform.client;
    let admin = admin_token(&platform).await;
    let card = serde_json::json!({"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}});
    // The unversioned alias of the original API.
    let created = client
        .post(platform.url("/api/payments"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"amount": 2500, "currency": "EUR", "payment_method": card}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let processed: serde_json::Value = client
        .post(platform.url(&format!("/api/v1/payments/{id}/process")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(processed["status"], "succeeded", "{processed}");
    let fetched: serde_json::Value = client
        .get(platform.url(&format!("/api/payments/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["amount_captured"], 2500);
    assert_eq!(fetched["payment_method"]["last4"], "4242");
}
