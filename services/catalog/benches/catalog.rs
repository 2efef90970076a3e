//! Search benchmark: tantivy (the catalog's index) against PostgreSQL full-text search on the
//! same seeded catalog and the same queries, single client and two concurrent clients.
//!
//! `cargo bench -p mercato-catalog` (PostgreSQL when `TEST_DATABASE_URL` is set, else SQLite
//! and tantivy only). `BENCH_PRODUCTS` changes the catalog size (default 100,000).
//!
//! Both engines answer "top 20 by relevance plus the total count", with an optional brand
//! filter. tantivy additionally computes its facets (categories, brands, attributes, price
//! buckets), typo tolerance and highlighted snippets, as the HTTP endpoint does; PostgreSQL
//! gets neither (its `websearch_to_tsquery` has no typo tolerance).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mercato_catalog::search::{Search, SearchIndex, SearchRequest};
use mercato_store::testing::{TestDb, postgres_url};
use mercato_store::{Backend, Db};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

const QUERIES: usize = 1_000;
const WARM_UP: usize = 100;

/// One benchmark query: words, and a brand filter for some.
#[derive(Clone, Debug)]
struct BenchQuery {
    text: String,
    brand: Option<String>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start runtime");
    runtime.block_on(run());
}

async fn run() {
    let products = mercato_store::testing::bench_setting("BENCH_PRODUCTS", 100_000) as usize;
    let test_db = match postgres_url() {
        Some(base) => TestDb::postgres(&base, &mercato_catalog::MIGRATOR).await,
        None => TestDb::sqlite(&mercato_catalog::MIGRATOR).await,
    };
    let db = test_db.db.clone();
    println!(
        "catalog search benchmark: {products} products on {}",
        test_db.label()
    );

    let started = Instant::now();
    let report = mercato_catalog::seed::seed(&db, products, |n| {
        if n % 20_000 < 500 {
            eprintln!("  seeded {n}");
        }
    })
    .await
    .expect("seed catalog");
    println!(
        "seeded {} products in {:.1} s",
        report.products,
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let search = Search::open_at(&dir.path().join("catalog-search"), db.clone())
        .await
        .expect("build index");
    println!(
        "tantivy index built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let queries = make_queries(&db).await;
    let typos = queries.iter().filter(|q| q.text.contains('~')).count();
    let queries: Vec<BenchQuery> = queries
        .into_iter()
        .map(|q| BenchQuery {
            text: q.text.replace('~', ""),
            brand: q.brand,
        })
        .collect();
    let brands = queries.iter().filter(|q| q.brand.is_some()).count();
    println!(
        "{} queries ({typos} with a typo, {brands} with a brand filter)",
        queries.len()
    );

    let index = Arc::new(search);
    let tantivy_1 = run_tantivy(&index, &queries, 1);
    let tantivy_2 = run_tantivy(&index, &queries, 2);
    let mut rows = vec![("tantivy", 1, tantivy_1), ("tantivy", 2, tantivy_2)];

    if db.backend() == Backend::Postgres {
        let started = Instant::now();
        create_pg_fts(&db).await;
        println!(
            "PostgreSQL tsvector column + GIN index built in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let pg_1 = run_pg(&db, &queries, 1).await;
        let pg_2 = run_pg(&db, &queries, 2).await;
        rows.push(("postgres", 1, pg_1));
        rows.push(("postgres", 2, pg_2));
    } else {
        println!("(set TEST_DATABASE_URL to compare with PostgreSQL full-text search)");
    }

    println!();
    println!(
        "{:<10} {:>7} {:>10} {:>10} {:>12} {:>12}",
        "engine", "clients", "p50 ms", "p99 ms", "queries/s", "avg total"
    );
    for (engine, clients, stats) in &rows {
        println!(
            "{engine:<10} {clients:>7} {:>10.3} {:>10.3} {:>12.0} {:>12.0}",
            ms(stats.p50),
            ms(stats.p99),
            stats.qps,
            stats.avg_total
        );
    }
    if rows.len() == 4 {
        for clients in [1, 2] {
            let t = rows
                .iter()
                .find(|r| r.0 == "tantivy" && r.1 == clients)
                .map(|r| r.2.qps);
            let p = rows
                .iter()
                .find(|r| r.0 == "postgres" && r.1 == clients)
                .map(|r| r.2.qps);
            if let (Some(t), Some(p)) = (t, p) {
                println!(
                    "tantivy / postgres queries/s with {clients} client(s): {:.1}x",
                    t / p
                );
            }
        }
    }
}

/// Latency percentiles and throughput of one run.
struct Stats {
    p50: Duration,
    p99: Duration,
    qps: f64,
    avg_total: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn stats(mut latencies: Vec<Duration>, wall: Duration, totals: u64) -> Stats {
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        qps: latencies.len() as f64 / wall.as_secs_f64(),
        avg_total: totals as f64 / latencies.len() as f64,
    }
}

/// ~1,000 queries from real titles: one or two words, some with a typo, some with a brand.
async fn make_queries(db: &Db) -> Vec<BenchQuery> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT title, brand FROM products WHERE status = 'active' ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("read titles");
    let mut rng = StdRng::seed_from_u64(42);
    let mut queries = Vec::with_capacity(QUERIES);
    while queries.len() < QUERIES {
        let Some((title, brand)) = rows.choose(&mut rng) else {
            break;
        };
        let words: Vec<&str> = title.split_whitespace().filter(|w| w.len() >= 3).collect();
        let Some(first) = words.choose(&mut rng) else {
            continue;
        };
        let mut text = first.to_lowercase();
        if rng.random_bool(0.3)
            && let Some(second) = words.choose(&mut rng).filter(|w| *w != first)
        {
            text = format!("{text} {}", second.to_lowercase());
        }
        // A typo: drop one inner letter of a long word (marked with `~` to count it).
        if rng.random_bool(0.15) && text.len() >= 6 && !text.contains(' ') {
            let at = rng.random_range(1..text.len() - 1);
            if text.is_char_boundary(at) && text.is_char_boundary(at + 1) {
                text.remove(at);
                text.push('~');
            }
        }
        let brand = brand.clone().filter(|_| rng.random_bool(0.2));
        queries.push(BenchQuery { text, brand });
    }
    queries
}

fn tantivy_request(q: &BenchQuery) -> SearchRequest {
    SearchRequest {
        q: q.text.clone(),
        brand: q.brand.clone(),
        currency: "EUR".into(),
        limit: 20,
        ..SearchRequest::default()
    }
}

fn run_tantivy(search: &Arc<Search>, queries: &[BenchQuery], clients: usize) -> Stats {
    let index: &SearchIndex = search.index();
    for q in queries.iter().take(WARM_UP) {
        index.search(&tantivy_request(q)).expect("search");
    }
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    let mut totals = 0;
                    for q in queries.iter().skip(c).step_by(clients) {
                        let t = Instant::now();
                        let r = index.search(&tantivy_request(q)).expect("search");
                        latencies.push(t.elapsed());
                        totals += r.total;
                    }
                    (latencies, totals)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let wall = started.elapsed();
    let totals = results.iter().map(|r| r.1).sum();
    stats(
        results.into_iter().flat_map(|r| r.0).collect(),
        wall,
        totals,
    )
}

/// A weighted tsvector over title (A), tags (B) and description (C), and its GIN index.
async fn create_pg_fts(db: &Db) {
    for statement in [
        "ALTER TABLE products ADD COLUMN IF NOT EXISTS search_tsv tsvector GENERATED ALWAYS AS (\
         setweight(to_tsvector('english', title), 'A') || \
         setweight(to_tsvector('english', tags), 'B') || \
         setweight(to_tsvector('english', description), 'C')) STORED",
        "CREATE INDEX IF NOT EXISTS products_search_tsv ON products USING GIN (search_tsv)",
        "ANALYZE products",
    ] {
        sqlx::query(statement)
            .execute(db.pool())
            .await
            .expect("create PostgreSQL FTS");
    }
}

const PG_QUERY: &str = "SELECT p.id, ts_rank(p.search_tsv, q) AS rank, count(*) OVER () AS total \
    FROM products p, websearch_to_tsquery('english', $1) q \
    WHERE p.status = 'active' AND p.search_tsv @@ q AND ($2::text IS NULL OR p.brand = $2) \
    ORDER BY rank DESC, p.id LIMIT 20";

async fn pg_search(db: &Db, q: &BenchQuery) -> u64 {
    let rows: Vec<(String, f32, i64)> = sqlx::query_as(PG_QUERY)
        .bind(&q.text)
        .bind(q.brand.as_deref())
        .fetch_all(db.pool())
        .await
        .expect("PostgreSQL search");
    rows.first().map_or(0, |r| r.2.max(0) as u64)
}

async fn run_pg(db: &Db, queries: &[BenchQuery], clients: usize) -> Stats {
    for q in queries.iter().take(WARM_UP) {
        pg_search(db, q).await;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let db = db.clone();
            let mine: Vec<BenchQuery> = queries.iter().skip(c).step_by(clients).cloned().collect();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut totals = 0;
                for q in &mine {
                    let t = Instant::now();
                    totals += pg_search(&db, q).await;
                    latencies.push(t.elapsed());
                }
                (latencies, totals)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut totals = 0;
    for task in tasks {
        let (l, t) = task.await.expect("client");
        latencies.extend(l);
        totals += t;
    }
    stats(latencies, started.elapsed(), totals)
}
