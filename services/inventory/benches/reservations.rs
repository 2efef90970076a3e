//! Reservation throughput benchmark: reservations per second through the public ledger API
//! (`Ledger::reserve`, no HTTP) on SQLite and, when `TEST_DATABASE_URL` is set, PostgreSQL,
//! beside `pgbench`'s simple-update figure for the same server.
//!
//! `cargo bench -p mercato-inventory --bench reservations` (PostgreSQL too when
//! `TEST_DATABASE_URL` is set). `BENCH_SECONDS` sets each scenario's length (default 10),
//! `BENCH_CONCURRENCY` the concurrent tasks (default 8).
//!
//! Setup: 2 warehouses, 1,000 SKUs with 10,000,000 units received in each. Scenarios: one-line
//! reservations of a random SKU, five-line reservations of distinct random SKUs, and one-line
//! reservations all of one hot SKU (every task queues on that SKU's lock). Each reservation is
//! one transaction (SKU locks, stock update, reservation, lines, movements, outbox rows); only
//! successes count, and p50/p99 are their latencies. With PostgreSQL and `pgbench` on PATH, a
//! scratch database gets `pgbench -i -s 10`, then `pgbench -b simple-update` runs with the same
//! clients and duration and reservations/s ÷ pgbench tps is printed; the database is dropped.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mercato_inventory::domain::MovementKind;
use mercato_inventory::ledger::{Adjustment, Change, Ledger, NewReservation, Want};
use mercato_inventory::store::{self, WarehouseRow};
use mercato_store::now_micros;
use mercato_store::testing::{TestDb, bench_setting, postgres_url};

const SKUS: usize = 1_000;
const STOCK: i64 = 10_000_000;
const SCENARIOS: [(&str, usize); 3] = [("1 line", 1), ("5 lines", 5), ("hot sku", 0)];

/// One scenario's figures.
struct Row {
    backend: &'static str,
    scenario: &'static str,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    failed: u64,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start runtime");
    runtime.block_on(run());
}

async fn run() {
    let seconds = bench_setting("BENCH_SECONDS", 10);
    let clients = bench_setting("BENCH_CONCURRENCY", 8) as usize;
    println!(
        "inventory reservation benchmark: {SKUS} SKUs x 2 warehouses, {clients} tasks, \
         {seconds} s per scenario"
    );
    let mut rows = Vec::new();
    let sqlite = TestDb::sqlite(&mercato_inventory::MIGRATOR).await;
    rows.extend(bench(&sqlite, clients, seconds).await);
    let mut tps = None;
    if let Some(base) = postgres_url() {
        let pg = TestDb::postgres(&base, &mercato_inventory::MIGRATOR).await;
        rows.extend(bench(&pg, clients, seconds).await);
        let name: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(pg.db.pool())
            .await
            .expect("name the PostgreSQL bench database");
        pg.db.close().await;
        let server = pg_args(&base);
        if let Err(e) = tool("dropdb", &server, &[&name]) {
            eprintln!("could not drop {name}: {e}");
        }
        tps = pgbench(&server, clients, seconds);
    } else {
        println!("(set TEST_DATABASE_URL to also measure PostgreSQL and compare with pgbench)");
    }

    println!();
    println!(
        "{:<9} {:<8} {:>15} {:>9} {:>9} {:>7} {:>10}",
        "backend", "scenario", "reservations/s", "p50 ms", "p99 ms", "failed", "÷ pgbench"
    );
    for r in &rows {
        let ratio = match tps {
            Some(tps) if r.backend == "postgres" => format!("{:.2}", r.per_second / tps),
            _ => "-".to_owned(),
        };
        println!(
            "{:<9} {:<8} {:>15.0} {:>9.2} {:>9.2} {:>7} {ratio:>10}",
            r.backend,
            r.scenario,
            r.per_second,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.failed
        );
    }
    if let Some(tps) = tps {
        println!("pgbench simple-update, {clients} clients: {tps:.0} tps");
    }
}

/// Seeds `test_db` and runs every scenario on it.
async fn bench(test_db: &TestDb, clients: usize, seconds: u64) -> Vec<Row> {
    let db = &test_db.db;
    mercato_kernel::service::migrate(db, &mercato_inventory::MIGRATOR)
        .await
        .expect("migrate outbox and idempotency tables");
    let mut warehouses = Vec::new();
    let mut conn = db.pool().acquire().await.expect("connect");
    for (priority, code) in (0..).zip(["B1", "B2"]) {
        let row = WarehouseRow::new(code, code, "DE", priority, now_micros());
        store::insert_warehouse(&mut conn, &row)
            .await
            .expect("insert warehouse");
        warehouses.push(row.id);
    }
    drop(conn);
    let ledger = Ledger::new(db.clone(), 3);
    let skus: Arc<Vec<String>> = Arc::new((0..SKUS).map(|i| format!("BENCH-{i:04}")).collect());
    let started = Instant::now();
    let receipts = skus
        .iter()
        .flat_map(|s| warehouses.iter().map(move |w| (s, w)));
    futures::stream::iter(receipts)
        .for_each_concurrent(clients, |(sku, warehouse)| {
            let a = Adjustment {
                sku: sku.clone(),
                warehouse_id: warehouse.clone(),
                change: Change::Delta(STOCK),
                kind: MovementKind::Receipt,
                reference: None,
                note: None,
            };
            let ledger = &ledger;
            async move {
                ledger.adjust(&a, "bench").await.expect("receive stock");
            }
        })
        .await;
    let backend = test_db.label();
    println!(
        "{backend}: received {STOCK} units of {SKUS} SKUs in 2 warehouses in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for (scenario, lines) in SCENARIOS {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|task| tokio::spawn(client(ledger.clone(), skus.clone(), lines, task, deadline)))
            .collect();
        let (mut latencies, mut failed) = (Vec::new(), 0);
        for task in tasks {
            let (l, f, error) = task.await.expect("bench task");
            latencies.extend(l);
            failed += f;
            if let Some(e) = error {
                eprintln!("{backend} {scenario}: a reservation failed: {e}");
            }
        }
        let wall = started.elapsed();
        latencies.sort_unstable();
        let at = |p: f64| {
            let i = ((latencies.len().max(1) - 1) as f64 * p).round() as usize;
            latencies.get(i).copied().unwrap_or_default()
        };
        rows.push(Row {
            backend,
            scenario,
            per_second: latencies.len() as f64 / wall.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
            failed,
        });
    }
    rows
}

/// One task: reserves `lines` distinct random SKUs (`0`: one line of the hot SKU 0) until
/// `deadline`; the latencies of successes, the failures and the first failure's message.
async fn client(
    ledger: Ledger,
    skus: Arc<Vec<String>>,
    lines: usize,
    task: usize,
    deadline: Instant,
) -> (Vec<Duration>, u64, Option<String>) {
    let mut rng = (task as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (mut latencies, mut failed, mut error) = (Vec::new(), 0, None);
    let mut n = 0_u64;
    while Instant::now() < deadline {
        let mut picked: Vec<usize> = Vec::with_capacity(lines.max(1));
        while picked.len() < lines.max(1) {
            let i = if lines == 0 { 0 } else { next(&mut rng) % SKUS };
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        let lines = picked.into_iter().map(|i| Want {
            sku: skus[i].clone(),
            quantity: 1,
        });
        let new = NewReservation {
            reference: format!("bench-{task}-{n}"),
            lines: lines.collect(),
            ttl_seconds: 900,
        };
        n += 1;
        let t = Instant::now();
        match ledger.reserve(&new, "bench").await {
            Ok(_) => latencies.push(t.elapsed()),
            Err(e) => {
                failed += 1;
                error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (latencies, failed, error)
}

/// xorshift64: a cheap per-task random SKU index.
fn next(state: &mut u64) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state as usize
}

/// How the PostgreSQL client tools reach the server of `TEST_DATABASE_URL`.
struct Pg {
    args: Vec<String>,
    password: Option<String>,
}

/// `-h`, `-p`, `-U` from `postgres://user[:password]@host[:port]/db`; a password goes to the
/// tools through `PGPASSWORD`.
fn pg_args(url: &str) -> Pg {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    let mut args = vec![format!("-h{host}"), format!("-p{port}")];
    if !user.is_empty() {
        args.push(format!("-U{user}"));
    }
    let password = Some(password.to_owned()).filter(|p| !p.is_empty());
    Pg { args, password }
}

/// Runs a PostgreSQL client tool against the server; its stdout, or why it failed.
fn tool(name: &str, pg: &Pg, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(name);
    command.args(&pg.args).args(args);
    if let Some(password) = &pg.password {
        command.env("PGPASSWORD", password);
    }
    let out = command.output().map_err(|e| format!("{name}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{name} {args:?}: {}: {}",
            out.status,
            stderr.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `pgbench -b simple-update` tps on a scratch database, or `None` when it was skipped.
fn pgbench(pg: &Pg, clients: usize, seconds: u64) -> Option<f64> {
    if Command::new("pgbench").arg("--version").output().is_err() {
        println!("pgbench not on PATH: comparison skipped");
        return None;
    }
    let db = format!("mercato_bench_pgbench_{}", std::process::id());
    tool("createdb", pg, &[&db]).expect("create the pgbench scratch database");
    println!("pgbench: initialising {db} (scale 10), then simple-update for {seconds} s");
    let (c, t) = (format!("-c{clients}"), format!("-T{seconds}"));
    let outcome = tool("pgbench", pg, &["-i", "-s10", "-q", &db]).and_then(|_| {
        tool(
            "pgbench",
            pg,
            &["-bsimple-update", &c, "-j2", &t, "-n", &db],
        )
    });
    if let Err(e) = tool("dropdb", pg, &[&db]) {
        eprintln!("could not drop {db}: {e}");
    }
    let out = outcome.unwrap_or_else(|e| panic!("pgbench failed: {e}"));
    // pgbench 14+ prints one `tps = N (without initial connection time)`; older versions print
    // "including" then "excluding connections establishing", so the last line is wanted.
    let tps = out.lines().rev().find_map(|l| l.strip_prefix("tps = "));
    let tps = tps.and_then(|l| l.split_whitespace().next()?.parse().ok());
    Some(tps.unwrap_or_else(|| panic!("no `tps = ` line in pgbench output:\n{out}")))
}
