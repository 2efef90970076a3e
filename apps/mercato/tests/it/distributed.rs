//! `mercato serve`: services as separate processes behind `mercato serve gateway`.

use std::process::Child;

use crate::{free_port, spawn_mercato, trusted_keys, wait_ok};

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two analytics replicas on PostgreSQL + NATS when `TEST_DATABASE_URL` and `NATS_URL` are
/// set, else one on SQLite + the embedded log; the gateway balances over them.
#[tokio::test]
async fn the_gateway_proxies_to_separately_served_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, jwks_var) = trusted_keys(dir.path());
    let token = keys.token_for("usr_ops", &["staff"], None);
    let data_dir = dir.path().join("data").display().to_string();
    let mut env = vec![jwks_var];
    let run = format!("dist_{}", std::process::id());
    let distributed = match (
        std::env::var("NATS_URL"),
        std::env::var("TEST_DATABASE_URL"),
    ) {
        (Ok(nats), Ok(pg)) => {
            env.push(("NATS_URL".into(), nats));
            env.push((
                "DATABASE_URL".into(),
                mercato_store::testing::fresh_postgres_url(&pg),
            ));
            env.push(("NATS_STREAM".into(), format!("TEST_{run}")));
            env.push(("NATS_SUBJECT_PREFIX".into(), format!("test.{run}")));
            true
        }
        _ => false,
    };
    let migrated = spawn_mercato(&["migrate", "--data-dir", &data_dir], &env).wait_with_output();
    assert!(migrated.unwrap().status.success());

    let replicas = if distributed { 2 } else { 1 };
    let mut processes = Processes(Vec::new());
    let mut urls = Vec::new();
    for _ in 0..replicas {
        let port = free_port().to_string();
        let mut child = spawn_mercato(
            &[
                "serve",
                "analytics",
                "--port",
                &port,
                "--data-dir",
                &data_dir,
            ],
            &env,
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_ok(&mut child, &format!("{url}/ready")).await;
        processes.0.push(child);
        urls.push(url);
    }
    let gateway_port = free_port().to_string();
    let mut gateway_env = env.clone();
    gateway_env.push(("ANALYTICS_SERVICE_URL".into(), urls.join(",")));
    let mut gateway = spawn_mercato(&["serve", "gateway", "--port", &gateway_port], &gateway_env);
    let base = format!("http://127.0.0.1:{gateway_port}");
    wait_ok(&mut gateway, &format!("{base}/health")).await;
    processes.0.push(gateway);

    let client = reqwest::Client::new();
    for i in 0..20 {
        let response = client
            .post(format!("{base}/api/analytics/track"))
            .json(&serde_json::json!({"event": "distributed_view", "message_id": format!("d-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let counts: Vec<serde_json::Value> = client
            .get(format!(
                "{base}/api/v1/analytics/metrics?name=distributed_view"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total: i64 = counts.iter().map(|c| c["count"].as_i64().unwrap()).sum();
        if total == 20 {
            break;
        }
        assert!(total < 20, "recorded {total} of 20");
        assert!(
            std::time::Instant::now() < deadline,
            "only {total} of 20 recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let openapi: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        openapi["paths"]["/api/v1/analytics/track"].is_object(),
        "{openapi}"
    );

    // One replica down: health says so, reads still succeed on the other.
    let first = &mut processes.0[0];
    first.kill().unwrap();
    first.wait().unwrap();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    if let (true, Ok(nats)) = (distributed, std::env::var("NATS_URL")) {
        for _ in 0..4 {
            let response = client
                .get(format!("{base}/api/v1/analytics/events?limit=1"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        drop(processes);
        crate::delete_stream(&nats, &format!("TEST_{run}")).await;
    }
}
