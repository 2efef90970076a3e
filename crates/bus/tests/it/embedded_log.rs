//! Durability of the embedded log: reopening, resuming at the cursor, dying without shutdown.

use std::path::Path;
use std::time::Duration;

use mercato_bus::{Bus, Consumer, Event, Handler};
use mercato_store::{Db, Tx};
use serde_json::json;

use crate::support::{MIGRATOR, Recorder, Running, effects, eventually, open_sqlite};

async fn inbox_db(path: &Path) -> Db {
    let db = open_sqlite(path).await;
    db.migrate(&MIGRATOR).await.unwrap();
    mercato_bus::migrate(&db).await.unwrap();
    db
}

/// A recorder that takes its time, so the process can be killed mid-stream.
struct Slow(Recorder);

#[async_trait::async_trait]
impl Handler for Slow {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.handle(event, tx).await
    }
}

fn order_event(n: usize) -> Event {
    Event::new("mercato/orders", "order.created", json!({"n": n})).unwrap()
}

#[tokio::test]
async fn the_log_survives_reopen_and_consumers_resume_at_their_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (1..=4).map(order_event).collect();

    {
        let bus = Bus::embedded(dir.path()).await.unwrap();
        let db = inbox_db(&data.path().join("first.db")).await;
        let run = Running::new();
        let recorder = Recorder::new("resumer");
        Consumer::new("resumer", &["order.>"], db, recorder.clone()).spawn(
            &bus,
            run.shutdown.clone(),
            &run.tasks,
        );
        bus.publish(&events[0]).await.unwrap();
        bus.publish(&events[1]).await.unwrap();
        eventually("two events", Duration::from_secs(10), || async {
            recorder.calls() == 2
        })
        .await;
        run.stop().await;
        // Published while the consumer is down.
        bus.publish(&events[2]).await.unwrap();
    }

    let bus = Bus::embedded(dir.path()).await.unwrap();
    bus.publish(&events[3]).await.unwrap();
    // A fresh, empty inbox: only the stored cursor can keep the first two from coming back.
    let db = inbox_db(&data.path().join("second.db")).await;
    let run = Running::new();
    let resumed = Recorder::new("resumer");
    Consumer::new("resumer", &["order.>"], db.clone(), resumed.clone()).spawn(
        &bus,
        run.shutdown.clone(),
        &run.tasks,
    );
    let latecomer = Recorder::new("latecomer");
    Consumer::new("latecomer", &["order.created"], db, latecomer.clone()).spawn(
        &bus,
        run.shutdown.clone(),
        &run.tasks,
    );
    eventually("resumed and caught up", Duration::from_secs(10), || async {
        resumed.calls() >= 2 && latecomer.calls() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(resumed.ids(), ids[2..]);
    assert_eq!(latecomer.ids(), ids, "a new consumer reads the whole log");
    run.stop().await;
}

#[test]
fn nothing_is_lost_when_the_process_dies_mid_stream() {
    const N: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let inbox_path = dir.path().join("inbox.db");

    // The "process": its own runtime, dropped without any shutdown once it is mid-stream.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bus = Bus::embedded(dir.path()).await.unwrap();
        let db = inbox_db(&inbox_path).await;
        let run = Running::new();
        let recorder = Recorder::new("survivor");
        Consumer::new("survivor", &["order.*"], db, Slow(recorder.clone())).spawn(
            &bus,
            run.shutdown.clone(),
            &run.tasks,
        );
        for n in 0..N {
            bus.publish(&order_event(n)).await.unwrap();
        }
        eventually("some handled", Duration::from_secs(30), || async {
            recorder.calls() >= 50
        })
        .await;
        assert!(recorder.calls() < N, "killed mid-stream");
        // Dropping the handles cancels nothing: the tasks die with the runtime, mid-work.
        drop(run);
    });
    rt.shutdown_background();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus = Bus::embedded(dir.path()).await.unwrap();
        let db = inbox_db(&inbox_path).await;
        let run = Running::new();
        Consumer::new(
            "survivor",
            &["order.*"],
            db.clone(),
            Recorder::new("survivor"),
        )
        .spawn(&bus, run.shutdown.clone(), &run.tasks);
        let expected = i64::try_from(N).unwrap();
        eventually("every event once", Duration::from_secs(30), || async {
            effects(&db, "survivor").await.0 >= expected
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(effects(&db, "survivor").await, (expected, expected));
        run.stop().await;
    });
}
