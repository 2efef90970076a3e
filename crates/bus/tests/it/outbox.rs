//! The transactional outbox and its relay.

use std::time::Duration;

use mercato_bus::{Consumer, Event, Relay, enqueue};
use serde_json::json;

use crate::support::{
    Recorder, Running, TestBus, eventually, nats_url, service_dbs, setups, unsent_outbox_rows,
};

#[tokio::test]
async fn rolled_back_rows_are_never_published_and_committed_rows_arrive_in_order() {
    for setup in setups().await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let run = Running::new();
        let recorder = Recorder::new("order-audit");
        Consumer::new("order-audit", &["order.*"], db.clone(), recorder.clone()).spawn(
            bus,
            run.shutdown.clone(),
            &run.tasks,
        );

        let ghost = Event::new("mercato/orders", "order.created", json!({"n": 0})).unwrap();
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &ghost).await.unwrap();
        tx.rollback().await.unwrap();

        let mut committed = Vec::new();
        for n in 1..=2 {
            let event = Event::new("mercato/orders", "order.created", json!({"n": n})).unwrap();
            let mut tx = db.begin().await.unwrap();
            enqueue(&mut tx, &event).await.unwrap();
            tx.commit().await.unwrap();
            committed.push(event.id);
        }
        // Several events of one transaction keep their order too.
        let mut tx = db.begin().await.unwrap();
        for (n, kind) in [
            (3, "order.paid"),
            (4, "order.fulfilled"),
            (5, "order.cancelled"),
        ] {
            let event = Event::new("mercato/orders", kind, json!({"n": n})).unwrap();
            enqueue(&mut tx, &event).await.unwrap();
            committed.push(event.id);
        }
        tx.commit().await.unwrap();

        let relay = Relay::new(db.clone(), bus.clone());
        assert_eq!(relay.run_once().await.unwrap(), 5, "{}", setup.label());
        assert_eq!(relay.run_once().await.unwrap(), 0, "{}", setup.label());
        assert_eq!(unsent_outbox_rows(db).await, 0);

        eventually("five events", Duration::from_secs(10), || async {
            recorder.calls() >= 5
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(recorder.ids(), committed, "{}", setup.label());
        assert!(!recorder.ids().contains(&ghost.id));
        run.stop().await;
        setup.bus.cleanup().await;
    }
}

#[tokio::test]
async fn enqueueing_an_id_twice_keeps_one_outbox_row() {
    for test_db in service_dbs().await {
        let db = &test_db.db;
        let event = Event::new("mercato/orders", "order.created", json!({})).unwrap();
        for _ in 0..2 {
            let mut tx = db.begin().await.unwrap();
            enqueue(&mut tx, &event).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(unsent_outbox_rows(db).await, 1, "{}", test_db.label());
    }
}

#[tokio::test]
async fn enqueue_rejects_an_invalid_subject_without_writing() {
    for test_db in service_dbs().await {
        let db = &test_db.db;
        let mut event = Event::new("mercato/orders", "order.created", json!({})).unwrap();
        event.kind = "order.*".into();
        let mut tx = db.begin().await.unwrap();
        assert!(enqueue(&mut tx, &event).await.is_err());
        tx.commit().await.unwrap();
        assert_eq!(unsent_outbox_rows(db).await, 0);
    }
}

#[tokio::test]
async fn every_backend_answers_a_readiness_ping() {
    let mut buses = vec![TestBus::embedded().await];
    if let Some(url) = nats_url() {
        buses.push(TestBus::nats(&url, Duration::from_secs(30)).await);
    }
    for test_bus in buses {
        test_bus
            .bus
            .ping()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", test_bus.label()));
        test_bus.cleanup().await;
    }
}
