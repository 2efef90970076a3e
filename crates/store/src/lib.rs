//! Database access shared by every Mercato service.
//!
//! One API over SQLite (the embedded default: one file per service, WAL mode) and PostgreSQL
//! (one database per service, created when missing), chosen by the URL. Queries go through
//! sqlx's `Any` driver so that one SQL text serves both engines; the schema conventions that
//! make this possible (BIGINT integers, TEXT ids and JSON, `$1` placeholders) are in the README.

mod connect;
pub mod testing;

use std::time::Duration;

pub use connect::service_database_url;
pub use sqlx;
pub use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool};

/// A transaction on a service database; pass `&mut *tx` to queries.
pub type Tx = sqlx::Transaction<'static, Any>;

/// Which engine a [`Db`] talks to, for the rare statement that must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The engine a connection URL names, if it is one Mercato supports.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Name used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Errors of connecting, migrating or querying a service database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported engine.
    #[error("unsupported database url `{0}` (expected sqlite: or postgres:)")]
    UnsupportedUrl(String),
    /// The SQLite file's directory could not be created or is not writable.
    #[error("cannot use data directory `{path}`: {source}")]
    DataDir {
        /// Directory that failed.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// Applying migrations failed.
    #[error("migrating database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation, for mapping to a domain conflict.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Sqlx(e) if is_unique_violation(e))
    }
}

/// Whether a sqlx error is a unique-constraint violation on either engine.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Whether a sqlx error means the transaction lost a race with another one and may simply be
/// run again: a PostgreSQL serialization failure (`40001`) or deadlock (`40P01`), or SQLite
/// still busy after its busy timeout.
pub fn is_transient_conflict(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "5" | "517" | "261")
        ),
        _ => false,
    }
}

/// Pool sizing and timeouts (`DB_CONNECTION_LIMIT`, `DB_POOL_TIMEOUT_SECONDS`,
/// `DB_CONNECT_TIMEOUT_SECONDS`).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a query waits for a free connection.
    pub acquire_timeout: Duration,
    /// How long connecting to the server may take.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 20,
            acquire_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A service's database: a connection pool plus the engine it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url`, creating the SQLite file or the PostgreSQL database when missing.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        connect::connect(url, settings).await
    }

    /// The pool, for queries outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this database runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction
    /// that reads and then writes can fail with "database is locked" without waiting.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Applies the service's pending migrations.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), StoreError> {
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Checks that the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite (one writer at a time there).
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// Closes every connection; waits for checked-out ones to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time as microseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// A URL with its password replaced, safe to log.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
