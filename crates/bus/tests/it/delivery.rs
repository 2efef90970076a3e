//! At-least-once delivery turned into exactly-once effects: volume, lost acks, duplicates.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use mercato_bus::{Consumer, Event, Relay, enqueue};
use serde_json::json;

use crate::support::{
    Recorder, Running, Setup, effects, eventually, setups, setups_with_ack_wait, unsent_outbox_rows,
};

const EVENTS: usize = 10_000;
const PER_TX: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_neither_lost_nor_duplicated() {
    for setup in setups().await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let started = std::time::Instant::now();
        let run = Running::new();
        // Two relays on one outbox, as with two replicas of a service.
        for _ in 0..2 {
            Relay::new(db.clone(), bus.clone()).spawn(run.shutdown.clone(), &run.tasks);
        }
        let recorder = Recorder::new("stock-counter");
        Consumer::new(
            "stock-counter",
            &["inventory.>"],
            db.clone(),
            recorder.clone(),
        )
        .spawn(bus, run.shutdown.clone(), &run.tasks);

        for chunk in 0..EVENTS / PER_TX {
            let mut tx = db.begin().await.unwrap();
            for i in 0..PER_TX {
                let n = chunk * PER_TX + i;
                let event = Event::new(
                    "mercato/inventory",
                    "inventory.stock.updated",
                    json!({"n": n}),
                )
                .unwrap();
                enqueue(&mut tx, &event).await.unwrap();
            }
            tx.commit().await.unwrap();
        }

        let expected = i64::try_from(EVENTS).unwrap();
        eventually("every effect", Duration::from_secs(180), || async {
            effects(db, "stock-counter").await.0 >= expected
        })
        .await;
        // Anything duplicated would show up shortly after.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            effects(db, "stock-counter").await,
            (expected, expected),
            "{}",
            setup.label()
        );
        assert_eq!(unsent_outbox_rows(db).await, 0);
        let order: Vec<u64> = recorder
            .seen()
            .iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "in order: {}",
            setup.label()
        );
        eprintln!(
            "{EVENTS} events, {}: {:?}",
            setup.label(),
            started.elapsed()
        );
        run.stop().await;
        setup.bus.cleanup().await;
    }
}

#[tokio::test]
async fn a_lost_ack_is_redelivered_and_handled_once() {
    for setup in setups_with_ack_wait(Duration::from_secs(1)).await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let run = Running::new();
        let recorder = Recorder::new("mailer");
        Consumer::new(
            "mailer",
            &["notification.email"],
            db.clone(),
            recorder.clone(),
        )
        .lose_acks_for_test(1)
        .spawn(bus, run.shutdown.clone(), &run.tasks);

        let first = Event::new("mercato/orders", "notification.email", json!({"n": 1})).unwrap();
        bus.publish(&first).await.unwrap();
        eventually("first handled", Duration::from_secs(10), || async {
            recorder.calls() >= 1
        })
        .await;
        let second = Event::new("mercato/orders", "notification.email", json!({"n": 2})).unwrap();
        bus.publish(&second).await.unwrap();
        eventually("second handled", Duration::from_secs(10), || async {
            recorder.calls() >= 2
        })
        .await;

        if setup.bus.nats.is_some() {
            // The unacked first message comes back after ack_wait (1 s) and is acked then.
            let (js, stream) = setup.bus.jetstream().await;
            let stream = js.get_stream(&stream).await.unwrap();
            eventually("redelivery acked", Duration::from_secs(10), || async {
                let info = stream.consumer_info("mailer").await.unwrap();
                info.delivered.consumer_sequence >= 3 && info.num_ack_pending == 0
            })
            .await;
        } else {
            // The embedded consumer rewinds to its stored cursor at once, as after a restart.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(recorder.calls(), 2, "{}", setup.label());
        assert_eq!(recorder.ids(), [first.id, second.id]);
        assert_eq!(effects(db, "mailer").await, (2, 2));
        run.stop().await;
        setup.bus.cleanup().await;
    }
}

/// Delivers `event` a second time behind the bus's back: on the embedded log by rewinding the
/// consumer's stored cursor, on JetStream by republishing it under another `Nats-Msg-Id`.
async fn deliver_again(setup: &Setup, consumer: &str, event: &Event) {
    if setup.bus.nats.is_some() {
        let (js, stream) = setup.bus.jetstream().await;
        let info = js
            .get_stream(&stream)
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        let prefix = info.config.subjects[0].trim_end_matches(".>").to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, "another-msg-id");
        let payload = serde_json::to_vec(event).unwrap();
        js.publish_with_headers(format!("{prefix}.{}", event.kind), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    } else {
        let log = setup.bus.log_db().await;
        let moved = sqlx::query("UPDATE consumer_cursors SET last_seq = 0 WHERE consumer = $1")
            .bind(consumer)
            .execute(log.pool())
            .await
            .unwrap();
        assert_eq!(moved.rows_affected(), 1);
    }
}

#[tokio::test]
async fn an_event_delivered_twice_is_handled_once() {
    for setup in setups().await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let event = Event::new("mercato/identity", "user.registered", json!({})).unwrap();
        bus.publish(&event).await.unwrap();

        let recorder = Recorder::new("welcome");
        let run = Running::new();
        let consumer = || Consumer::new("welcome", &["user.*"], db.clone(), recorder.clone());
        consumer().spawn(bus, run.shutdown.clone(), &run.tasks);
        eventually("first delivery", Duration::from_secs(10), || async {
            recorder.calls() == 1
        })
        .await;
        run.stop().await;

        deliver_again(&setup, "welcome", &event).await;
        let run = Running::new();
        consumer().spawn(bus, run.shutdown.clone(), &run.tasks);
        let sentinel = Event::new("mercato/identity", "user.registered", json!({})).unwrap();
        bus.publish(&sentinel).await.unwrap();
        eventually("sentinel", Duration::from_secs(10), || async {
            recorder.calls() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(recorder.ids(), [event.id, sentinel.id], "{}", setup.label());
        assert_eq!(effects(db, "welcome").await, (2, 2));
        run.stop().await;
        setup.bus.cleanup().await;
    }
}

#[tokio::test]
async fn publishing_an_id_twice_is_handled_once() {
    for setup in setups().await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let run = Running::new();
        let recorder = Recorder::new("dedup");
        Consumer::new(
            "dedup",
            &["payment.succeeded"],
            db.clone(),
            recorder.clone(),
        )
        .spawn(bus, run.shutdown.clone(), &run.tasks);
        let event = Event::new("mercato/payments", "payment.succeeded", json!({"n": 1})).unwrap();
        bus.publish(&event).await.unwrap();
        bus.publish(&event).await.unwrap();
        // Same id, other content: still the same event as far as the bus is concerned.
        let mut altered = event.clone();
        altered.data = json!({"n": 99});
        bus.publish(&altered).await.unwrap();
        let sentinel = Event::new("mercato/payments", "payment.succeeded", json!({})).unwrap();
        bus.publish(&sentinel).await.unwrap();

        eventually("sentinel", Duration::from_secs(10), || async {
            recorder.ids().contains(&sentinel.id)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            recorder.ids(),
            [event.id.clone(), sentinel.id],
            "{}",
            setup.label()
        );
        assert_eq!(recorder.seen()[0].data, json!({"n": 1}));

        let stored: u64 = if setup.bus.nats.is_some() {
            let (js, stream) = setup.bus.jetstream().await;
            js.get_stream(&stream)
                .await
                .unwrap()
                .get_info()
                .await
                .unwrap()
                .state
                .messages
        } else {
            let log = setup.bus.log_db().await;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
                .fetch_one(log.pool())
                .await
                .unwrap();
            u64::try_from(n).unwrap()
        };
        assert_eq!(stored, 2, "one stored copy per id: {}", setup.label());
        run.stop().await;
        setup.bus.cleanup().await;
    }
}

#[tokio::test]
async fn a_consumer_restarted_with_other_settings_resumes() {
    let Some(url) = crate::support::nats_url() else {
        return;
    };
    for test_db in crate::support::service_dbs().await {
        let db = &test_db.db;
        let first = crate::support::TestBus::nats(&url, Duration::from_secs(30)).await;
        let (_, stream) = first.jetstream().await;
        let recorder = Recorder::new("reconfigured");
        let run = Running::new();
        Consumer::new(
            "reconfigured",
            &["order.paid"],
            db.clone(),
            recorder.clone(),
        )
        .spawn(&first.bus, run.shutdown.clone(), &run.tasks);
        let one = Event::new("mercato/orders", "order.paid", json!({})).unwrap();
        first.bus.publish(&one).await.unwrap();
        eventually("first", Duration::from_secs(10), || async {
            recorder.calls() == 1
        })
        .await;
        run.stop().await;

        // Same stream and prefix, another ack_wait: the durable consumer is updated in place.
        let (_, prefix) = stream.split_once('_').unwrap();
        let options = mercato_bus::NatsOptions {
            stream: stream.clone(),
            subject_prefix: format!("t{prefix}"),
            ack_wait: Duration::from_secs(5),
            ..Default::default()
        };
        let bus = mercato_bus::Bus::nats_with(&url, options).await.unwrap();
        let run = Running::new();
        Consumer::new(
            "reconfigured",
            &["order.paid"],
            db.clone(),
            recorder.clone(),
        )
        .spawn(&bus, run.shutdown.clone(), &run.tasks);
        let two = Event::new("mercato/orders", "order.paid", json!({})).unwrap();
        bus.publish(&two).await.unwrap();
        eventually("second", Duration::from_secs(10), || async {
            recorder.calls() == 2
        })
        .await;
        let (js, _) = first.jetstream().await;
        let info = js
            .get_stream(&stream)
            .await
            .unwrap()
            .consumer_info("reconfigured")
            .await;
        assert_eq!(info.unwrap().config.ack_wait, Duration::from_secs(5));
        run.stop().await;
        first.cleanup().await;
    }
}
