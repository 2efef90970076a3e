//! SIGKILL with events in flight, then a restart: every accepted event is handled exactly once.

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use mercato_store::{Db, PoolSettings};

use crate::{Platform, trusted_keys};

const EVENTS: usize = 1000;

/// Sends a track call per index; returns the indexes whose call was accepted (202).
async fn track(
    client: reqwest::Client,
    url: String,
    run: String,
    indexes: Vec<usize>,
    accepted: Arc<AtomicUsize>,
) -> Vec<(usize, serde_json::Value)> {
    futures::stream::iter(indexes)
        .map(|i| {
            let (client, url, accepted) = (client.clone(), url.clone(), accepted.clone());
            let body = serde_json::json!({
                "event": format!("crash_{run}"),
                "message_id": format!("{run}-{i}"),
                "properties": {"i": i},
            });
            async move {
                let response = client.post(url).json(&body).send().await.ok()?;
                if response.status() != 202 {
                    return None;
                }
                let body = response.json::<serde_json::Value>().await.ok()?;
                accepted.fetch_add(1, Ordering::SeqCst);
                Some((i, body))
            }
        })
        .buffer_unordered(32)
        .filter_map(|r| async move { r })
        .collect()
        .await
}

async fn recorded_count(platform: &Platform, token: &str, name: &str) -> i64 {
    let url = platform.url(&format!("/api/v1/analytics/metrics?name={name}"));
    let response = platform
        .client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let days: Vec<serde_json::Value> = response.json().await.unwrap();
    days.iter().map(|d| d["count"].as_i64().unwrap()).sum()
}

async fn recorded_ids(platform: &Platform, token: &str, name: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = platform.url(&format!("/api/v1/analytics/events?name={name}&limit=100"));
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: serde_json::Value = platform
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for event in page["data"].as_array().unwrap() {
            ids.push(event["event_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) if page["has_more"] == true => after = Some(next.to_owned()),
            _ => return ids,
        }
    }
}

async fn crash_and_recover(
    extra_env: Vec<(String, String)>,
    run: &str,
    database_url: Option<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url.unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            dir.path().join("data/analytics.db").display()
        )
    });
    let (keys, jwks_var) = trusted_keys(dir.path());
    let token = keys.token_for("usr_ops", &["staff"], None);
    // One client fires every event at once: a load, not a shopper, so no edge rate limit.
    let mut env = vec![jwks_var, ("GATEWAY_RATE_LIMIT_RPS".into(), "0".into())];
    env.extend(extra_env);
    let mut platform = Platform::start(&dir.path().join("data"), env).await;
    let name = format!("crash_{run}");

    // Kill the platform halfway through the calls: some calls are answered, some are cut
    // off, and accepted events sit in the outbox, on the bus or in a consumer.
    let counter = Arc::new(AtomicUsize::new(0));
    let url = platform.url("/api/v1/analytics/track");
    let sender = tokio::spawn(track(
        platform.client.clone(),
        url.clone(),
        run.to_owned(),
        (0..EVENTS).collect(),
        counter.clone(),
    ));
    while counter.load(Ordering::SeqCst) < EVENTS / 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    platform.kill();
    let accepted = sender.await.unwrap();
    let handled_before = handled_in_database(&database_url).await;
    eprintln!(
        "{run}: killed with {} of {EVENTS} calls accepted and {handled_before} events handled",
        accepted.len()
    );
    assert!(accepted.len() >= EVENTS / 2);

    platform.restart().await;

    // Clients retry what was cut off, and some retry everything: every event is recorded once.
    let retried = track(
        platform.client.clone(),
        url,
        run.to_owned(),
        (0..EVENTS).collect(),
        Arc::default(),
    )
    .await;
    assert_eq!(retried.len(), EVENTS);
    for (i, _) in &accepted {
        let again = retried.iter().find(|(j, _)| j == i).unwrap();
        assert_eq!(
            again.1["duplicate"], true,
            "accepted call {i} was not recognised on retry"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while recorded_count(&platform, &token, &name).await < EVENTS as i64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a duplicate delivery, if any, time to show up before counting for good.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        recorded_count(&platform, &token, &name).await,
        EVENTS as i64
    );
    let mut ids = recorded_ids(&platform, &token, &name).await;
    assert_eq!(ids.len(), EVENTS);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), EVENTS, "an event was recorded twice");
}

/// Events the analytics consumer has recorded, read from its database directly.
async fn handled_in_database(url: &str) -> i64 {
    let db = Db::connect(url, &PoolSettings::default()).await.unwrap();
    let n = mercato_store::sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    n
}

#[tokio::test]
async fn sigkill_with_events_in_flight_loses_and_repeats_nothing_on_the_embedded_bus() {
    crash_and_recover(Vec::new(), "embedded", None).await;
}

#[tokio::test]
async fn sigkill_with_events_in_flight_loses_and_repeats_nothing_on_nats_and_postgres() {
    let (Ok(nats), Ok(pg)) = (
        std::env::var("NATS_URL"),
        std::env::var("TEST_DATABASE_URL"),
    ) else {
        eprintln!("NATS_URL and TEST_DATABASE_URL unset: the distributed variant runs in .ci/run");
        return;
    };
    let database = mercato_store::testing::fresh_postgres_url(&pg);
    let analytics_database = mercato_store::service_database_url(
        "analytics",
        None,
        Some(&database),
        std::path::Path::new("."),
    );
    // Streams and durable consumers outlive a test run: a stream of its own keeps other runs'
    // events out of the counts.
    let run = format!("nats_{}", std::process::id());
    let env = vec![
        ("NATS_URL".into(), nats.clone()),
        ("DATABASE_URL".into(), database.clone()),
        ("NATS_STREAM".into(), format!("TEST_{run}")),
        ("NATS_SUBJECT_PREFIX".into(), format!("test.{run}")),
    ];
    crash_and_recover(env, &run, Some(analytics_database)).await;
    crate::delete_stream(&nats, &format!("TEST_{run}")).await;
}
