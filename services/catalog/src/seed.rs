//! Catalog generator for demos and benchmarks: categories, brands, products, variants, prices
//! and stock, the same for the same seed. Rows are written directly in batched transactions,
//! without outbox events: the search index is rebuilt from the database afterwards.

mod words;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use mercato_kernel::id::new_id;
use mercato_store::{Db, Tx, now_micros};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use crate::domain::Slug;
use crate::store::categories as category_store;
use words::*;

/// Seed of the generator used by [`seed`].
pub const DEFAULT_SEED: u64 = 0x006d_6572_6361_746f;
/// Products written per transaction.
const BATCH: usize = 500;
/// Parameters per `INSERT` statement.
const MAX_PARAMS: usize = 400;

/// What a seeding run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Categories created (0 when the tree already existed).
    pub categories: usize,
    /// Products written.
    pub products: usize,
    /// Variants written.
    pub variants: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// Generates `products` products with the default seed; `progress` gets the running count
/// after each batch.
pub async fn seed(
    db: &Db,
    products: usize,
    progress: impl Fn(usize),
) -> anyhow::Result<SeedReport> {
    seed_with(db, products, DEFAULT_SEED, progress).await
}

/// Like [`seed`] with another generator seed.
pub async fn seed_with(
    db: &Db,
    products: usize,
    rng_seed: u64,
    progress: impl Fn(usize),
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(rng_seed);
    let (leaves, categories) = ensure_categories(db).await?;
    let brands: Vec<String> = BRAND_HEADS
        .iter()
        .flat_map(|h| BRAND_TAILS.iter().map(move |t| format!("{h} {t}")))
        .collect();
    let mut slugs: HashSet<String> = sqlx::query_scalar("SELECT slug FROM products")
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .collect();
    let mut report = SeedReport {
        categories,
        ..SeedReport::default()
    };
    let now = now_micros();
    // The next batch is generated while the previous one is written.
    let mut writing: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    let mut generated = 0;
    while generated < products {
        let n = BATCH.min(products - generated);
        let mut rows = Rows::default();
        for _ in 0..n {
            generate(&mut rng, &leaves, &brands, &mut slugs, now, &mut rows);
        }
        generated += n;
        let variants = rows.variants.len();
        if let Some(previous) = writing.take() {
            previous.await??;
            progress(report.products);
        }
        let db = db.clone();
        writing = Some(tokio::spawn(async move {
            let mut tx = db.begin().await?;
            rows.write(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }));
        report.products += n;
        report.variants += variants;
    }
    if let Some(last) = writing {
        last.await??;
        progress(report.products);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Creates the category tree when the table is empty; returns each leaf's id with its nouns
/// and how many categories were created.
async fn ensure_categories(
    db: &Db,
) -> anyhow::Result<(Vec<(String, &'static [&'static str])>, usize)> {
    let mut conn = db.pool().acquire().await?;
    let existing = category_store::all(&mut conn).await?;
    drop(conn);
    let mut by_name: HashMap<String, String> = HashMap::new();
    for c in &existing {
        by_name.insert(c.slug.clone(), c.id.clone());
    }
    let mut tx = db.begin().await?;
    let mut created = 0;
    let mut leaves = Vec::new();
    for (path, nouns) in LEAVES {
        let mut parent: Option<crate::domain::category::Category> = None;
        let mut prefix = String::new();
        for (depth, name) in path.split('/').enumerate() {
            prefix = if depth == 0 {
                name.to_owned()
            } else {
                format!("{prefix} {name}")
            };
            let slug = Slug::from_title(&prefix).as_str().to_owned();
            let id = match by_name.get(&slug) {
                Some(id) => id.clone(),
                None => {
                    let id = new_id("cat");
                    let c = crate::domain::category::Category {
                        path: crate::domain::category::child_path(parent.as_ref(), &id),
                        parent_id: parent.as_ref().map(|p| p.id.clone()),
                        id: id.clone(),
                        name: name.to_owned(),
                        slug: slug.clone(),
                        position: i64::try_from(created).unwrap_or(0),
                    };
                    category_store::insert(&mut tx, &c, now_micros()).await?;
                    by_name.insert(slug, id.clone());
                    created += 1;
                    id
                }
            };
            parent = category_store::find(&mut tx, &id).await?;
        }
        if let Some(leaf) = parent {
            leaves.push((leaf.id, *nouns));
        }
    }
    tx.commit().await?;
    Ok((leaves, created))
}

/// One batch of rows, column values in table order.
#[derive(Default)]
struct Rows {
    products: Vec<Vec<Cell>>,
    categories: Vec<Vec<Cell>>,
    variants: Vec<Vec<Cell>>,
    prices: Vec<Vec<Cell>>,
}

enum Cell {
    Text(String),
    Int(i64),
    MaybeInt(Option<i64>),
}

impl Rows {
    async fn write(self, tx: &mut Tx) -> anyhow::Result<()> {
        insert(tx, "products (id, title, slug, description, status, brand, tags, attributes, images, seo_title, seo_description, in_stock, created_at, updated_at)", self.products).await?;
        insert(
            tx,
            "product_categories (product_id, category_id)",
            self.categories,
        )
        .await?;
        insert(tx, "variants (id, product_id, sku, options, weight_grams, barcode, position, available, created_at, updated_at)", self.variants).await?;
        insert(
            tx,
            "variant_prices (variant_id, currency, amount, compare_at_amount)",
            self.prices,
        )
        .await
    }
}

/// Multi-row `INSERT`s of at most [`MAX_PARAMS`] parameters each: sqlx looks parameters up
/// by name on SQLite, which costs time quadratic in a statement's parameter count.
async fn insert(tx: &mut Tx, table: &str, rows: Vec<Vec<Cell>>) -> anyhow::Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let width = rows.peek().map_or(1, Vec::len).max(1);
        let chunk: Vec<Vec<Cell>> = rows.by_ref().take(MAX_PARAMS / width).collect();
        let mut sql = format!("INSERT INTO {table} VALUES ");
        for r in 0..chunk.len() {
            let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            sql.push_str(&format!(
                "{}({})",
                if r == 0 { "" } else { ", " },
                cells.join(", ")
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for cell in chunk.into_iter().flatten() {
            query = match cell {
                Cell::Text(s) => query.bind(s),
                Cell::Int(i) => query.bind(i),
                Cell::MaybeInt(i) => query.bind(i),
            };
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn pick<'a>(rng: &mut StdRng, list: &'a [&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or_default()
}

/// A price ending in 99 between 4.99 and 299.99.
fn price(rng: &mut StdRng) -> i64 {
    rng.random_range(4..300) * 100 + 99
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn generate(
    rng: &mut StdRng,
    leaves: &[(String, &'static [&'static str])],
    brands: &[String],
    slugs: &mut HashSet<String>,
    now: i64,
    rows: &mut Rows,
) {
    let Some((category_id, nouns)) = leaves.choose(rng) else {
        return;
    };
    let (adjective, material, noun) = (
        pick(rng, ADJECTIVES),
        pick(rng, MATERIALS),
        pick(rng, nouns),
    );
    let title = format!("{adjective} {material} {noun}");
    let brand = brands.choose(rng).cloned().unwrap_or_default();
    let colour = pick(rng, COLOURS);
    let base = Slug::from_title(&title);
    let slug = (1..)
        .map(|n| base.with_suffix(n).as_str().to_owned())
        .find(|s| !slugs.contains(s))
        .unwrap_or_default();
    slugs.insert(slug.clone());
    let sentences = rng.random_range(2..=4);
    let description = SENTENCES
        .sample(rng, sentences)
        .map(|s| {
            s.replace("{title}", &title)
                .replace("{material}", &material.to_lowercase())
                .replace("{brand}", &brand)
                .replace("{colour}", colour)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut tags: Vec<String> = (0..rng.random_range(1..=3))
        .map(|_| pick(rng, TAGS).to_owned())
        .collect();
    tags.extend([noun.to_lowercase(), material.to_lowercase()]);
    tags.sort();
    tags.dedup();
    let sized = category_is_sized(nouns);
    let attributes: BTreeMap<&str, String> = BTreeMap::from([
        ("colour", colour.to_owned()),
        ("material", material.to_lowercase()),
        (
            "size",
            if sized {
                "S–XL".to_owned()
            } else {
                "one size".to_owned()
            },
        ),
    ]);
    let status = match rng.random_range(0..100) {
        0 => "archived",
        1..=4 => "draft",
        _ => "active",
    };
    // Spread over the past year for "newest" sorting; `updated_at` is now, so a search index
    // catching up on recent changes picks the rows up.
    let created_at = now - rng.random_range(0..365 * 24 * 3600) * 1_000_000;
    let id = new_id("prd");
    // Pictures shipped with the web bundle, so the demo shop shows images offline; chosen
    // by the slug, leaving the random sequence (and so the rest of the demo data) as it was.
    let picture = slug.bytes().map(usize::from).sum::<usize>();
    let images: Vec<String> = (1..=rng.random_range(1..=3))
        .map(|n| format!("/assets/demo/{}.svg", (picture + n) % 6 + 1))
        .collect();
    let code: String = title
        .split(' ')
        .filter_map(|w| w.chars().next())
        .collect::<String>()
        .to_uppercase();
    let mut in_stock = false;
    let eur = price(rng);
    for v in 0..rng.random_range(1..=4) {
        let variant_id = new_id("var");
        let option = if sized {
            ("size", SIZES[v % SIZES.len()].to_owned())
        } else {
            ("colour", COLOURS[(v * 5) % COLOURS.len()].to_owned())
        };
        let available = if rng.random_bool(0.15) {
            0
        } else {
            rng.random_range(1..=200)
        };
        in_stock |= available > 0;
        let sku = format!("{code}-{}-{}", &id[id.len() - 10..], v + 1).to_uppercase();
        let weight = rng.random_range(50..=5000);
        let barcode = format!("40{:011}", rng.random_range(0..100_000_000_000i64));
        rows.variants.push(vec![
            Cell::Text(variant_id.clone()),
            Cell::Text(id.clone()),
            Cell::Text(sku),
            Cell::Text(json(&BTreeMap::from([option]))),
            Cell::MaybeInt(Some(weight)),
            Cell::Text(barcode),
            Cell::Int(v as i64),
            Cell::Int(available),
            Cell::Int(created_at),
            Cell::Int(created_at),
        ]);
        let compare_at = rng.random_bool(0.2).then_some(eur * 5 / 4);
        let usd = eur * 108 / 100 / 100 * 100 + 99;
        rows.prices.push(vec![
            Cell::Text(variant_id.clone()),
            Cell::Text("EUR".into()),
            Cell::Int(eur),
            Cell::MaybeInt(compare_at),
        ]);
        rows.prices.push(vec![
            Cell::Text(variant_id),
            Cell::Text("USD".into()),
            Cell::Int(usd),
            Cell::MaybeInt(compare_at.map(|c| c * 108 / 100)),
        ]);
    }
    rows.categories.push(vec![
        Cell::Text(id.clone()),
        Cell::Text(category_id.clone()),
    ]);
    rows.products.push(vec![
        Cell::Text(id),
        Cell::Text(title.clone()),
        Cell::Text(slug),
        Cell::Text(description),
        Cell::Text(status.into()),
        Cell::Text(brand),
        Cell::Text(json(&tags)),
        Cell::Text(json(&attributes)),
        Cell::Text(json(&images)),
        Cell::Text(title),
        Cell::Text(format!("Buy the {adjective} {material} {noun} online")),
        Cell::Int(i64::from(in_stock)),
        Cell::Int(created_at),
        Cell::Int(created_at),
    ]);
}

fn category_is_sized(nouns: &[&str]) -> bool {
    [
        "T-Shirt", "Sweater", "Jeans", "Jacket", "Sneakers", "Boots", "Sandals",
    ]
    .iter()
    .any(|n| nouns.contains(n))
}
