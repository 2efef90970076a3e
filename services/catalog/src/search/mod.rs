//! Product search: a tantivy index kept as a read model of the catalog database.
//!
//! The index lives in `{MERCATO_DATA_DIR}/catalog-search/` and has one writer per process
//! (tantivy locks the directory). It follows product events: on `product.created`, `.updated`
//! or `.archived` the product is re-read from the database by id and its document replaced (or
//! removed when it is no longer active), so the event payload's shape does not matter. Changes
//! are committed in small batches ([`COMMIT_WINDOW`]) and the reader reloads after each commit,
//! so a write is searchable well within a second.
//!
//! Each commit records its time; at start the products changed since shortly before the last
//! commit are re-read, so a crash between handling an event and committing loses nothing. An
//! empty index, or one of another schema version, is rebuilt from the database (`mercato
//! reindex` rebuilds on demand). Prices are indexed per currency for [`CURRENCIES`] (EUR, USD).

mod buckets;
mod index;
mod query;
mod schema;
mod snippets;
mod source;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mercato_bus::{Bus, Consumer, Event, Handler};
use mercato_contracts::subjects;
use mercato_kernel::Context;
use mercato_store::{Db, Tx};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use buckets::BUCKET_BOUNDS;
pub use index::SearchIndex;
pub use query::{
    Facets, MAX_SUGGESTIONS, PriceBucket, SearchHit, SearchRequest, SearchResults, Sort,
};
pub use schema::{CURRENCIES, Fields, ProductDoc, SCHEMA_VERSION};

/// Durable name of the consumer that feeds the index.
pub const CONSUMER_NAME: &str = "catalog-search";
/// Longest a change waits before it is committed.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(100);
/// How far before the last commit the catch-up at start looks for changed products.
const CATCH_UP_MARGIN_MICROS: i64 = 60_000_000;
/// More changed products than this at start are handled by a full rebuild instead.
const CATCH_UP_REBUILD_ABOVE: usize = 2_000;

/// Errors of the search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// Reading products from the database failed.
    #[error("reading products for the search index failed: {0}")]
    Db(#[from] sqlx::Error),
    /// The index directory could not be prepared.
    #[error("preparing the search index directory failed: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking index task panicked or was cancelled.
    #[error("search index task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The search read model; cheap to clone.
#[derive(Clone)]
pub struct Search {
    index: Arc<SearchIndex>,
    db: Db,
    dirty: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Search {
    /// Opens the index under the data directory (rebuilding or catching up from the database
    /// as needed), and starts its committer and its product-event consumer.
    pub async fn open(ctx: &Context) -> anyhow::Result<Self> {
        let dir = ctx.config.mercato_data_dir.join("catalog-search");
        let search = Self::open_at(&dir, ctx.db.clone()).await?;
        search.spawn_committer(ctx.shutdown.clone(), &ctx.tasks);
        search.spawn_consumer(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
        Ok(search)
    }

    /// Opens the index in `dir` without background tasks: rebuilt from `db` when new, empty or
    /// of another schema version, else brought up to date with recently changed products.
    pub async fn open_at(dir: &Path, db: Db) -> Result<Self, SearchError> {
        let owned = dir.to_owned();
        let (index, created) =
            tokio::task::spawn_blocking(move || SearchIndex::open_in_dir(&owned)).await??;
        let search = Self::from_index(index, db);
        let empty = search.index.reader.searcher().num_docs() == 0;
        if created || empty {
            let count = search.rebuild().await?;
            tracing::info!(products = count, "search index built from the database");
        } else if let Some(at) = search.index.last_commit_at() {
            search.catch_up(at - CATCH_UP_MARGIN_MICROS).await?;
        }
        Ok(search)
    }

    /// An index in memory over `db`, empty until [`Search::rebuild`]; for tests and benchmarks.
    pub fn in_ram(db: Db) -> Result<Self, SearchError> {
        Ok(Self::from_index(SearchIndex::in_ram()?, db))
    }

    fn from_index(index: SearchIndex, db: Db) -> Self {
        Self {
            index: Arc::new(index),
            db,
            dirty: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Replaces the whole index with the active products in the database; returns how many
    /// documents it holds. Used by `mercato reindex`.
    pub async fn rebuild(&self) -> Result<u64, SearchError> {
        self.index.rebuild(&self.db).await
    }

    /// Rebuilds the index in `dir` from `db` (`mercato reindex`); returns how many products
    /// it holds. Fails while another process holds the index's writer lock.
    pub async fn reindex_dir(dir: &Path, db: Db) -> Result<u64, SearchError> {
        let owned = dir.to_owned();
        let (index, _) =
            tokio::task::spawn_blocking(move || SearchIndex::open_in_dir(&owned)).await??;
        Self::from_index(index, db).rebuild().await
    }

    /// Re-reads product `id` from the database and replaces its document (removes it when the
    /// product is gone or not active); searchable after the next commit.
    pub async fn refresh(&self, id: &str) -> Result<(), SearchError> {
        let product = source::load_one(&self.db, id).await?;
        self.index.upsert(id, product.as_ref()).await;
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(())
    }

    /// Commits pending changes now and makes them searchable.
    pub async fn commit(&self) -> Result<(), SearchError> {
        self.dirty.store(false, Ordering::Release);
        self.index.commit(mercato_store::now_micros()).await
    }

    /// Runs a search on a blocking thread.
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResults, SearchError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.search(&request)).await?
    }

    /// Up to [`MAX_SUGGESTIONS`] titles starting with `q` (search-as-you-type).
    pub async fn suggest(&self, q: String) -> Result<Vec<String>, SearchError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.suggest(&q)).await?
    }

    /// The index itself, for synchronous callers (benchmarks).
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// The category path (ids from the root) of category `id`, for drill-down facets.
    pub async fn category_path(&self, id: &str) -> Result<Option<Vec<String>>, SearchError> {
        let path: Option<String> = sqlx::query_scalar("SELECT path FROM categories WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(path.map(|p| {
            p.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }))
    }

    async fn catch_up(&self, since: i64) -> Result<(), SearchError> {
        let ids = source::changed_since(&self.db, since).await?;
        if ids.len() > CATCH_UP_REBUILD_ABOVE {
            // A bulk load (e.g. `mercato seed`) happened meanwhile: one pass is faster.
            let count = self.rebuild().await?;
            tracing::info!(products = count, "search index rebuilt after a bulk change");
            return Ok(());
        }
        for id in &ids {
            self.refresh(id).await?;
        }
        if !ids.is_empty() {
            self.commit().await?;
            tracing::info!(products = ids.len(), "search index caught up");
        }
        Ok(())
    }

    /// Commits changes at most [`COMMIT_WINDOW`] after they were made, until `shutdown`
    /// (then commits what is left).
    pub fn spawn_committer(&self, shutdown: CancellationToken, tasks: &TaskTracker) {
        let search = self.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = search.wake.notified() => {}
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(COMMIT_WINDOW) => {}
                }
                search.commit_if_dirty().await;
            }
            search.commit_if_dirty().await;
        });
    }

    async fn commit_if_dirty(&self) {
        if self.dirty.load(Ordering::Acquire)
            && let Err(error) = self.commit().await
        {
            self.dirty.store(true, Ordering::Release);
            tracing::warn!(%error, "committing the search index failed; retrying");
        }
    }

    /// Starts the durable consumer of product events that keeps the index up to date.
    pub fn spawn_consumer(&self, bus: &Bus, shutdown: CancellationToken, tasks: &TaskTracker) {
        let handler = ProductEvents {
            search: self.clone(),
        };
        let subjects = [
            subjects::PRODUCT_CREATED,
            subjects::PRODUCT_UPDATED,
            subjects::PRODUCT_ARCHIVED,
        ];
        Consumer::new(CONSUMER_NAME, &subjects, self.db.clone(), handler)
            .spawn(bus, shutdown, tasks);
    }
}

/// Re-indexes the product an event is about.
struct ProductEvents {
    search: Search,
}

#[async_trait::async_trait]
impl Handler for ProductEvents {
    async fn handle(&self, event: &Event, _tx: &mut Tx) -> anyhow::Result<()> {
        let Some(id) = product_id(event) else {
            tracing::warn!(event_id = %event.id, "product event without a product id; skipped");
            return Ok(());
        };
        self.search.refresh(&id).await?;
        Ok(())
    }
}

/// The product id of an event: `data.id`, `data.product.id`, `data.product_id` or `subject`.
fn product_id(event: &Event) -> Option<String> {
    let data = &event.data;
    [
        data.get("id"),
        data.get("product").and_then(|p| p.get("id")),
        data.get("product_id"),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().map(str::to_owned))
    .or_else(|| event.subject.clone())
    .filter(|id| !id.is_empty() && id.len() <= 128)
}

#[cfg(test)]
mod tests;
