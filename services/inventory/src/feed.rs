//! The live stock feed behind `GET /api/v1/stock/stream`.
//!
//! One task per process reads the totals of SKUs changed since its last look and broadcasts
//! those that differ from what it sent before. It reads the database rather than listening to
//! its own writes so that changes made by other replicas of the service reach every stream.
//! A transaction may commit with a `updated_at` older than the last look, so each look reaches
//! back [`OVERLAP`]; remembering what was sent keeps that from repeating anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mercato_store::{Db, now_micros};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store;

/// How far back each look reaches, in micros.
const OVERLAP: i64 = 5_000_000;
/// How often the feed looks while someone listens.
const PERIOD: Duration = Duration::from_millis(250);

/// A SKU's stock as streamed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StockTick {
    /// The SKU.
    pub sku: String,
    /// Units that can be sold now.
    pub available: i64,
    /// Whether any can.
    pub in_stock: bool,
}

/// Subscribes streams to stock changes.
#[derive(Debug)]
pub struct Feed {
    sender: broadcast::Sender<StockTick>,
    wake: Notify,
}

impl Feed {
    /// Starts the feed's task.
    pub fn spawn(db: Db, shutdown: CancellationToken, tasks: &TaskTracker) -> Arc<Self> {
        let (sender, _) = broadcast::channel(1024);
        let feed = Arc::new(Self {
            sender,
            wake: Notify::new(),
        });
        let runner = feed.clone();
        tasks.spawn(async move { runner.run(db, shutdown).await });
        feed
    }

    /// Receives every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StockTick> {
        let receiver = self.sender.subscribe();
        // Look at once, so that a stream opened right after a change sees it promptly.
        self.wake.notify_one();
        receiver
    }

    /// Asks for a look now (after a local change), instead of at the next period.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    async fn run(&self, db: Db, shutdown: CancellationToken) {
        let mut sent: HashMap<String, (i64, i64)> = HashMap::new();
        let mut since = now_micros();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(PERIOD) => {}
            }
            let now = now_micros();
            if self.sender.receiver_count() == 0 {
                since = now;
                sent.clear();
                continue;
            }
            let changed = match db.pool().acquire().await {
                Ok(mut conn) => store::totals_changed_since(&mut conn, since - OVERLAP).await,
                Err(e) => Err(e),
            };
            let changed = match changed {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "stock feed could not read changes");
                    continue;
                }
            };
            for row in changed {
                let available = row.available.max(0);
                if sent.get(&row.sku).is_some_and(|(a, _)| *a == available) {
                    continue;
                }
                sent.insert(row.sku.clone(), (available, now));
                let _ = self.sender.send(StockTick {
                    in_stock: available > 0,
                    sku: row.sku,
                    available,
                });
            }
            // Forget SKUs that left the look-back window; memory stays bounded by the
            // SKUs changed in the last few seconds.
            sent.retain(|_, (_, at)| *at >= now - 2 * OVERLAP);
            since = now;
        }
    }
}
