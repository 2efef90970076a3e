//! Fresh databases for tests: SQLite always, PostgreSQL too when `TEST_DATABASE_URL` is set.
//!
//! When `TEST_DATABASE_URL` is set the PostgreSQL database is required: a server that is down
//! fails the test instead of skipping it.

use crate::{Backend, Db, Migrator, PoolSettings};

/// One fresh, migrated database; the SQLite file lives as long as this value.
pub struct TestDb {
    /// The database.
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// `sqlite` or `postgres`, to name the engine in assertion messages.
    pub fn label(&self) -> &'static str {
        self.db.backend().as_str()
    }

    /// A fresh SQLite database in its own temporary directory.
    pub async fn sqlite(migrator: &Migrator) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url, &PoolSettings::default())
            .await
            .expect("open sqlite test db");
        db.migrate(migrator).await.expect("migrate sqlite test db");
        Self {
            db,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database on the server of `base_url`.
    pub async fn postgres(base_url: &str, migrator: &Migrator) -> Self {
        let url = fresh_postgres_url(base_url);
        let db = Db::connect(
            &url,
            &PoolSettings {
                max_connections: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but PostgreSQL failed: {e}"));
        assert_eq!(db.backend(), Backend::Postgres);
        db.migrate(migrator)
            .await
            .expect("migrate postgres test db");
        Self { db, _dir: None }
    }
}

/// A URL for a new, uniquely named database on the server of `base_url`; [`Db::connect`]
/// creates it.
pub fn fresh_postgres_url(base_url: &str) -> String {
    let mut url = url::Url::parse(base_url).expect("TEST_DATABASE_URL is a valid URL");
    url.set_path(&format!("mercato_test_{}", uuid::Uuid::now_v7().simple()));
    url.to_string()
}

/// The PostgreSQL server tests should also run on, from `TEST_DATABASE_URL`.
pub fn postgres_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A benchmark's numeric knob from the environment (`BENCH_SECONDS`, `BENCH_CONCURRENCY`…),
/// or `default`; a value that is not a number stops the run rather than being ignored.
pub fn bench_setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got `{v}`"))
        })
        .unwrap_or(default)
}

/// Every database a store test should run against, each fresh and migrated.
pub async fn databases(migrator: &Migrator) -> Vec<TestDb> {
    let mut all = vec![TestDb::sqlite(migrator).await];
    if let Some(base) = postgres_url() {
        all.push(TestDb::postgres(&base, migrator).await);
    }
    all
}

/// Rows in `table`, for asserting that a rejected request stored nothing.
pub async fn count_rows(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(db.pool())
        .await
        .unwrap_or_else(|e| panic!("counting rows of {table}: {e}"))
}
