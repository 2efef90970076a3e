//! Opening service databases: URL resolution, SQLite files, PostgreSQL database creation.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::{Backend, Db, PoolSettings, StoreError, redact};

static DRIVERS: Once = Once::new();

/// The database URL of one service.
///
/// `specific` (`<NAME>_DATABASE_URL`) wins and is used as is. Otherwise a shared
/// `DATABASE_URL` is split per service: on PostgreSQL the database name gets the service as a
/// suffix (`mercato` → `mercato_orders`), on SQLite the file name does. With neither, the
/// service gets `<data_dir>/<service>.db`.
pub fn service_database_url(
    service: &str,
    specific: Option<&str>,
    shared: Option<&str>,
    data_dir: &Path,
) -> String {
    if let Some(url) = specific.filter(|u| !u.is_empty()) {
        return url.to_owned();
    }
    match shared.filter(|u| !u.is_empty()) {
        Some(url) if url.starts_with("postgres") => match url::Url::parse(url) {
            Ok(mut parsed) => {
                let base = parsed.path().trim_start_matches('/');
                let base = if base.is_empty() { "mercato" } else { base };
                let name = format!("{base}_{service}");
                parsed.set_path(&name);
                parsed.to_string()
            }
            Err(_) => url.to_owned(),
        },
        Some(url) if url.starts_with("sqlite:") => {
            let (path, query) = split_sqlite_url(url);
            let path = PathBuf::from(path);
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("mercato");
            let file = path.with_file_name(format!("{stem}_{service}.db"));
            format!("sqlite://{}{}", file.display(), query)
        }
        Some(other) => other.to_owned(),
        None => format!(
            "sqlite://{}",
            data_dir.join(format!("{service}.db")).display()
        ),
    }
}

fn split_sqlite_url(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    match rest.find('?') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

pub(crate) async fn connect(url: &str, settings: &PoolSettings) -> Result<Db, StoreError> {
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let backend = Backend::from_url(url)?;
    let url = match backend {
        Backend::Sqlite => prepare_sqlite(url).await?,
        Backend::Postgres => {
            create_postgres_database(url, settings).await?;
            url.to_owned()
        }
    };
    let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
    let pool = AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL makes a commit durable against a process crash; NORMAL only risks
                    // the last transactions on power loss, and trebles commit throughput.
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 15000").await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    tracing::debug!(url = %redact(&url), backend = backend.as_str(), "database pool ready");
    Ok(Db { pool, backend })
}

/// Creates the file's directory and switches the file to WAL once, before the pool opens
/// several connections (changing the journal mode needs an exclusive lock).
async fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    let (path, query) = split_sqlite_url(url);
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|_| path != ":memory:") {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
    }
    let url = if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("sqlite://{path}?mode=rwc")
    } else {
        format!("sqlite://{path}{query}&mode=rwc")
    };
    let mut conn = AnyConnectOptions::from_str(&url)?.connect().await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.close().await?;
    Ok(url)
}

/// Creates the URL's database on its server when it does not exist yet.
async fn create_postgres_database(url: &str, settings: &PoolSettings) -> Result<(), StoreError> {
    let parsed = url::Url::parse(url).map_err(|_| StoreError::UnsupportedUrl(redact(url)))?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty() || name == "postgres" {
        return Ok(());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(StoreError::UnsupportedUrl(redact(url)));
    }
    let mut admin_url = parsed.clone();
    admin_url.set_path("/postgres");
    let options = AnyConnectOptions::from_str(admin_url.as_str())?.disable_statement_logging();
    let mut conn = tokio::time::timeout(settings.connect_timeout, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        let statement = format!("CREATE DATABASE \"{name}\"");
        let created = conn.execute(sqlx::AssertSqlSafe(statement)).await;
        match created {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_url_wins() {
        let url = service_database_url(
            "orders",
            Some("postgres://h/x"),
            Some("postgres://h/y"),
            Path::new("d"),
        );
        assert_eq!(url, "postgres://h/x");
    }

    #[test]
    fn shared_postgres_url_gets_one_database_per_service() {
        let url = service_database_url(
            "orders",
            None,
            Some("postgres://u:p@h:5432/shop?sslmode=disable"),
            Path::new("d"),
        );
        assert_eq!(url, "postgres://u:p@h:5432/shop_orders?sslmode=disable");
    }

    #[test]
    fn shared_sqlite_url_gets_one_file_per_service() {
        let url =
            service_database_url("orders", None, Some("sqlite://var/shop.db"), Path::new("d"));
        assert_eq!(url, "sqlite://var/shop_orders.db");
    }

    #[test]
    fn default_is_a_file_in_the_data_dir() {
        let url = service_database_url("orders", None, None, Path::new("/tmp/data"));
        assert_eq!(url, "sqlite:///tmp/data/orders.db");
    }
}
