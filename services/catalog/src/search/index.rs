//! The tantivy index: opening (or recreating) it on disk, writing documents, committing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use mercato_store::Db;
use tantivy::collector::FacetCollector;
use tantivy::directory::MmapDirectory;
use tantivy::query::AllQuery;
use tantivy::schema::Facet;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::SearchError;
use super::schema::{Fields, ProductDoc, SCHEMA_VERSION};
use super::source;

/// File beside the index recording the schema version it was built with.
const VERSION_FILE: &str = "mercato-schema-version";
/// Memory of the single index writer, shared by its threads.
const WRITER_MEMORY: usize = 100_000_000;
/// Most attribute names reported in facets.
const MAX_ATTRIBUTE_NAMES: usize = 20;

/// An open index with its only writer (one per process: tantivy locks the directory).
pub struct SearchIndex {
    /// The index.
    pub index: Index,
    /// Field handles.
    pub fields: Fields,
    /// Reader, reloaded by hand after each commit.
    pub reader: IndexReader,
    writer: Arc<Mutex<IndexWriter>>,
    /// Attribute names present in the index (for attribute facets), refreshed on reload.
    attribute_names: RwLock<Vec<String>>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (empty) when missing, unreadable or of another
    /// schema version. The flag says whether it was created and must be filled from the database.
    pub fn open_in_dir(dir: &Path) -> Result<(Self, bool), SearchError> {
        let fields = Fields::new();
        let version_path = dir.join(VERSION_FILE);
        let current = std::fs::read_to_string(&version_path)
            .ok()
            .is_some_and(|v| v.trim() == SCHEMA_VERSION.to_string());
        if current {
            let opened = MmapDirectory::open(dir)
                .map_err(tantivy::TantivyError::from)
                .and_then(Index::open);
            match opened {
                Ok(index) if index.schema() == fields.schema => {
                    return Ok((Self::from_index(index, fields)?, false));
                }
                Ok(_) => {
                    tracing::warn!(dir = %dir.display(), "search index schema differs; rebuilding")
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "search index unreadable; rebuilding");
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let index = Index::create_in_dir(dir, fields.schema.clone())?;
        std::fs::write(&version_path, SCHEMA_VERSION.to_string())?;
        Ok((Self::from_index(index, fields)?, true))
    }

    /// An index in memory, for tests and benchmarks.
    pub fn in_ram() -> Result<Self, SearchError> {
        let fields = Fields::new();
        let index = Index::create_in_ram(fields.schema.clone());
        Self::from_index(index, fields)
    }

    fn from_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        let writer = index.writer_with_num_threads(threads, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let this = Self {
            index,
            fields,
            reader,
            writer: Arc::new(Mutex::new(writer)),
            attribute_names: RwLock::new(Vec::new()),
        };
        this.refresh_attribute_names()?;
        Ok(this)
    }

    /// Attribute names found in the index, most frequent first.
    pub fn attribute_names(&self) -> Vec<String> {
        self.attribute_names
            .read()
            .map(|names| names.clone())
            .unwrap_or_default()
    }

    fn refresh_attribute_names(&self) -> Result<(), SearchError> {
        let searcher = self.reader.searcher();
        let mut collector = FacetCollector::for_field("attributes");
        collector.add_facet(Facet::root());
        let counts = searcher.search(&AllQuery, &collector)?;
        let names = counts
            .top_k(Facet::root(), MAX_ATTRIBUTE_NAMES)
            .into_iter()
            .filter_map(|(facet, _)| facet.to_path().last().map(|s| (*s).to_owned()))
            .collect();
        if let Ok(mut slot) = self.attribute_names.write() {
            *slot = names;
        }
        Ok(())
    }

    /// Replaces `id`'s document with `product` (or just removes it when `None`); visible after
    /// the next [`SearchIndex::commit`].
    pub async fn upsert(&self, id: &str, product: Option<&ProductDoc>) {
        let writer = self.writer.lock().await;
        writer.delete_term(Term::from_field_text(self.fields.id, id));
        if let Some(product) = product
            && let Err(error) = writer.add_document(self.fields.document(product))
        {
            tracing::warn!(product_id = %id, %error, "indexing product failed");
        }
    }

    /// Commits pending changes with `payload` (the commit time, for catch-up) and reloads the
    /// reader so they are searchable.
    pub async fn commit(self: &Arc<Self>, payload: i64) -> Result<(), SearchError> {
        let writer = self.writer.clone().lock_owned().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.commit_blocking(writer, payload)).await?
    }

    fn commit_blocking(
        &self,
        mut writer: OwnedMutexGuard<IndexWriter>,
        payload: i64,
    ) -> Result<(), SearchError> {
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload.to_string());
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        self.refresh_attribute_names()
    }

    /// When the last commit happened (microseconds), from its payload.
    pub fn last_commit_at(&self) -> Option<i64> {
        let metas = self.index.load_metas().ok()?;
        metas.payload?.parse().ok()
    }

    /// Replaces the whole index with the active products of `db`; returns how many it holds.
    /// Searches see the old index until the final commit.
    pub async fn rebuild(self: &Arc<Self>, db: &Db) -> Result<u64, SearchError> {
        let started = mercato_store::now_micros();
        let mut writer = self.writer.clone().lock_owned().await;
        writer.delete_all_documents()?;
        let mut after = String::new();
        loop {
            let page = source::load_page(db, &after).await?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            let fields = self.fields.clone();
            writer = tokio::task::spawn_blocking(move || {
                for product in &page {
                    writer.add_document(fields.document(product))?;
                }
                Ok::<_, SearchError>(writer)
            })
            .await??;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.commit_blocking(writer, started)).await??;
        Ok(self.reader.searcher().num_docs())
    }
}
