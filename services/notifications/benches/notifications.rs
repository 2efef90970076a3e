//! Notifications benchmark: sends per second end to end (accepted over HTTP, rendered from a
//! template, queued, claimed and delivered) through the in-app channel and through SMTP to a
//! real SMTP server (Python's aiosmtpd), on SQLite and, when `TEST_DATABASE_URL` is set,
//! PostgreSQL.
//!
//! `cargo bench -p mercato-notifications --bench notifications`. `BENCH_SENDS` (default 2000)
//! and `BENCH_CONCURRENCY` (HTTP clients, default 16). Per-user rate limits are off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/it/smtp.rs"]
mod smtp;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mercato_kernel::Config;
use mercato_kernel::testing::TestService;
use mercato_store::testing::bench_setting;
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start runtime");
    runtime.block_on(run());
}

async fn run() {
    let sends = bench_setting("BENCH_SENDS", 2000) as usize;
    let clients = bench_setting("BENCH_CONCURRENCY", 16) as usize;
    let sink = smtp::SmtpSink::start();
    println!("notifications benchmark: {sends} sends, {clients} HTTP clients");
    println!(
        "{:<9} {:<7} {:>14} {:>16} {:>8}",
        "backend", "channel", "accepted/s", "delivered/s", "failed"
    );
    let mut config = Config::default();
    config.notifications_user_rate_per_second = 0;
    config.notifications_api_rate_per_second = 0;
    config.notifications_poll_ms = 20;
    config.smtp_url = Some(format!("smtp://127.0.0.1:{}", sink.port));
    let apps = TestService::start_all(
        &mercato_notifications::MIGRATOR,
        config,
        mercato_notifications::start,
    )
    .await;
    for app in &apps {
        let app = Arc::new(app);
        for channel in ["in_app", "email"] {
            bench(&app, channel, sends, clients).await;
        }
    }
    let received = sink.messages().len();
    println!("SMTP server received {received} messages");
}

async fn bench(app: &TestService, channel: &str, sends: usize, clients: usize) {
    let started = Instant::now();
    let accepted: Vec<bool> = futures::stream::iter(0..sends)
        .map(|n| async move {
            let body = if channel == "in_app" {
                json!({"channel": "in_app", "user_id": format!("usr_{}", n % 100),
                       "template": "low_stock_alert", "data": {"sku": format!("SKU-{n}"), "available": 1, "threshold": 5}})
            } else {
                json!({"channel": "email", "to": format!("u{n}@example.com"), "template": "order_shipped",
                       "data": {"number": n, "carrier": "DHL", "tracking_number": format!("JD{n}")}})
            };
            app.post_json("/api/v1/notifications", body).await.status.is_success()
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let accept_time = started.elapsed();
    let target = if channel == "in_app" {
        "delivered"
    } else {
        "sent"
    };
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT CAST(SUM(CASE WHEN status = $2 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM notifications WHERE channel = $1",
        )
        .bind(if channel == "in_app" {
            "in_app"
        } else {
            "email"
        })
        .bind(target)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        if done + failed >= sends as i64 {
            let total = started.elapsed();
            println!(
                "{:<9} {:<7} {:>14.0} {:>16.0} {:>8}",
                app.label,
                channel,
                accepted.iter().filter(|a| **a).count() as f64 / accept_time.as_secs_f64(),
                done as f64 / total.as_secs_f64(),
                failed
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
