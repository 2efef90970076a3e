//! Handlers that keep failing: bounded retries, then the dead-letter subject.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato_bus::{Consumer, DLQ_SUBJECT, Event, Handler, RetryPolicy};
use mercato_store::Tx;
use serde_json::json;

use crate::support::{Recorder, Running, effects, eventually, record_effect, setups};

/// Fails events whose data says `"fail": true`, panics on `"panic": true`, records the rest.
#[derive(Clone, Default)]
struct Picky {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Picky {
    fn attempts(&self, id: &str) -> u32 {
        self.attempts.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Handler for Picky {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        *self
            .attempts
            .lock()
            .unwrap()
            .entry(event.id.clone())
            .or_default() += 1;
        record_effect("billing", event, tx).await?;
        if event.data["panic"] == true {
            panic!("ledger exploded");
        }
        if event.data["fail"] == true {
            anyhow::bail!("card declined for {}", event.id);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_always_fails_ends_on_the_dead_letter_subject() {
    for setup in setups().await {
        let (db, bus) = (&setup.db.db, &setup.bus.bus);
        let run = Running::new();
        let picky = Picky::default();
        let retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        };
        Consumer::new("billing", &["payment.*"], db.clone(), picky.clone())
            .with_retry(retry)
            .spawn(bus, run.shutdown.clone(), &run.tasks);
        let letters = Recorder::new("dlq-reader");
        Consumer::new("dlq-reader", &[DLQ_SUBJECT], db.clone(), letters.clone()).spawn(
            bus,
            run.shutdown.clone(),
            &run.tasks,
        );

        let bad = Event::new("mercato/payments", "payment.failed", json!({"fail": true}))
            .unwrap()
            .with_subject("pi_1");
        let panicky =
            Event::new("mercato/payments", "payment.failed", json!({"panic": true})).unwrap();
        let good = Event::new("mercato/payments", "payment.succeeded", json!({})).unwrap();
        for event in [&bad, &panicky, &good] {
            bus.publish(event).await.unwrap();
        }

        eventually(
            "two dead letters and the good event",
            Duration::from_secs(20),
            || async { letters.calls() >= 2 && picky.attempts(&good.id) >= 1 },
        )
        .await;
        let seen = letters.seen();
        let letter = seen
            .iter()
            .find(|l| l.data["event"]["id"] == bad.id.as_str())
            .unwrap();
        assert_eq!(letter.kind, DLQ_SUBJECT, "{}", setup.label());
        assert_eq!(letter.data["consumer"], "billing");
        assert_eq!(letter.data["attempts"], 3);
        let error = letter.data["error"].as_str().unwrap();
        assert!(error.contains("card declined"), "{error}");
        assert_eq!(letter.data["event"], serde_json::to_value(&bad).unwrap());
        assert_eq!(letter.subject.as_deref(), Some(bad.id.as_str()));

        let letter = seen
            .iter()
            .find(|l| l.data["event"]["id"] == panicky.id.as_str())
            .unwrap();
        let error = letter.data["error"].as_str().unwrap();
        assert!(
            error.contains("panicked") && error.contains("ledger exploded"),
            "{error}"
        );

        // Not retried forever: the failing events were acknowledged after the dead letter.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(picky.attempts(&bad.id), 3, "{}", setup.label());
        assert_eq!(picky.attempts(&panicky.id), 3);
        assert_eq!(picky.attempts(&good.id), 1);
        assert_eq!(letters.calls(), 2);
        // Failed attempts rolled back their effects; only the good event left one.
        assert_eq!(effects(db, "billing").await, (1, 1));
        run.stop().await;
        setup.bus.cleanup().await;
    }
}
