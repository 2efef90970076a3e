//! Store tests; each runs on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

use mercato_store::testing::{self, TestDb};
use mercato_store::{Backend, Db, Migrator, PoolSettings, now_micros};

static MIGRATOR: Migrator = sqlx::migrate!("tests/it/migrations");

async fn insert(db: &Db, id: &str, sku: &str, available: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO items (id, sku, available, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(sku)
        .bind(available)
        .bind(now_micros())
        .execute(db.pool())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn conditional_update_never_goes_below_zero() {
    for TestDb { db, .. } in testing::databases(&MIGRATOR).await {
        insert(&db, "itm_1", "sku-1", 3).await.unwrap();
        let take = |n: i64| {
            sqlx::query_scalar::<_, i64>(
                "UPDATE items SET available = available - $1 WHERE sku = $2 AND available >= $1 \
                 RETURNING available",
            )
            .bind(n)
            .bind("sku-1")
        };
        assert_eq!(
            take(2).fetch_optional(db.pool()).await.unwrap(),
            Some(1),
            "{db:?}"
        );
        assert_eq!(take(2).fetch_optional(db.pool()).await.unwrap(), None);
    }
}

#[tokio::test]
async fn unique_violations_are_recognised() {
    for TestDb { db, .. } in testing::databases(&MIGRATOR).await {
        insert(&db, "itm_1", "sku-1", 1).await.unwrap();
        let err = insert(&db, "itm_2", "sku-1", 1).await.unwrap_err();
        assert!(
            mercato_store::is_unique_violation(&err),
            "{} {err}",
            db.backend().as_str()
        );
    }
}

#[tokio::test]
async fn rolled_back_transactions_leave_nothing() {
    for TestDb { db, .. } in testing::databases(&MIGRATOR).await {
        let mut tx = db.begin().await.unwrap();
        sqlx::query("INSERT INTO items (id, sku, available, created_at) VALUES ('a', 'b', 1, 0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn concurrent_writers_on_one_file_all_commit() {
    for TestDb { db, .. } in testing::databases(&MIGRATOR).await {
        insert(&db, "itm_1", "sku-1", 0).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.begin().await.unwrap();
                    let n: i64 =
                        sqlx::query_scalar("SELECT available FROM items WHERE id = 'itm_1'")
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                    sqlx::query("UPDATE items SET available = $1 WHERE id = 'itm_1'")
                        .bind(n + 1)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT available FROM items WHERE id = 'itm_1'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        // PostgreSQL's read committed may lose updates in this read-modify-write; SQLite's
        // immediate transactions serialize them.
        if db.backend() == Backend::Sqlite {
            assert_eq!(n, 40);
        }
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_the_data_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/deeper/svc.db").display()
    );
    let db = Db::connect(&url, &PoolSettings::default()).await.unwrap();
    db.migrate(&MIGRATOR).await.unwrap();
    db.migrate(&MIGRATOR).await.unwrap();
    db.ping().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn postgres_databases_are_created_when_missing() {
    let Some(base) = testing::postgres_url() else {
        return;
    };
    let url = testing::fresh_postgres_url(&base);
    let first = Db::connect(&url, &PoolSettings::default()).await.unwrap();
    first.migrate(&MIGRATOR).await.unwrap();
    // A second start finds the database and the applied migrations.
    let again = Db::connect(&url, &PoolSettings::default()).await.unwrap();
    again.migrate(&MIGRATOR).await.unwrap();
    insert(&again, "itm_1", "sku-1", 1).await.unwrap();
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Db::connect("mysql://localhost/x", &PoolSettings::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsupported database url"));
}
