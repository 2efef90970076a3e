//! Index-level tests over a SQLite catalog database and a temporary index directory.

use std::time::{Duration, Instant};

use mercato_store::testing::TestDb;

use super::*;

/// Inserts an active product with one category path, a brand, tags, attributes and prices.
pub(crate) async fn insert_product(db: &Db, p: &TestProduct<'_>) {
    let now = mercato_store::now_micros();
    sqlx::query(
        "INSERT INTO products (id, title, slug, description, status, brand, tags, attributes, \
         images, in_stock, created_at, updated_at) \
         VALUES ($1, $2, $1, $3, $4, $5, $6, $7, '[]', $8, $9, $10)",
    )
    .bind(p.id)
    .bind(p.title)
    .bind(p.description)
    .bind(p.status)
    .bind(p.brand)
    .bind(serde_json::to_string(p.tags).unwrap())
    .bind(format!(r#"{{"colour":"{}"}}"#, p.colour))
    .bind(i64::from(p.in_stock))
    .bind(p.created_at)
    .bind(now)
    .execute(db.pool())
    .await
    .unwrap();
    for (i, category) in p.categories.iter().enumerate() {
        let parent = (i > 0).then(|| p.categories[i - 1]);
        let path = format!("/{}/", p.categories[..=i].join("/"));
        sqlx::query(
            "INSERT INTO categories (id, parent_id, name, slug, path, position, created_at, \
             updated_at) VALUES ($1, $2, $1, $1, $3, 0, 0, 0) ON CONFLICT (id) DO NOTHING",
        )
        .bind(*category)
        .bind(parent)
        .bind(path)
        .execute(db.pool())
        .await
        .unwrap();
    }
    if let Some(leaf) = p.categories.last() {
        sqlx::query("INSERT INTO product_categories (product_id, category_id) VALUES ($1, $2)")
            .bind(p.id)
            .bind(*leaf)
            .execute(db.pool())
            .await
            .unwrap();
    }
    let variant = format!("var_{}", p.id);
    sqlx::query(
        "INSERT INTO variants (id, product_id, sku, options, position, available, created_at, \
         updated_at) VALUES ($1, $2, $1, '{}', 0, 0, 0, 0)",
    )
    .bind(&variant)
    .bind(p.id)
    .execute(db.pool())
    .await
    .unwrap();
    for (currency, amount) in [("EUR", p.price), ("USD", p.price + 100)] {
        sqlx::query(
            "INSERT INTO variant_prices (variant_id, currency, amount) VALUES ($1, $2, $3)",
        )
        .bind(&variant)
        .bind(currency)
        .bind(amount)
        .execute(db.pool())
        .await
        .unwrap();
    }
}

/// What [`insert_product`] writes.
pub(crate) struct TestProduct<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub status: &'a str,
    pub brand: &'a str,
    pub tags: &'a [&'a str],
    pub colour: &'a str,
    pub categories: &'a [&'a str],
    pub price: i64,
    pub in_stock: bool,
    pub created_at: i64,
}

const BASE: TestProduct<'static> = TestProduct {
    id: "",
    title: "",
    description: "",
    status: "active",
    brand: "Acme",
    tags: &[],
    colour: "red",
    categories: &["cat_gear"],
    price: 1_999,
    in_stock: true,
    created_at: 0,
};

async fn fixture(db: &Db) {
    let products = [
        TestProduct {
            id: "prd_01",
            title: "Hiking Backpack 30L",
            description: "A light pack for day hikes.",
            brand: "Trailco",
            tags: &["outdoor", "bag"],
            categories: &["cat_gear", "cat_bags"],
            price: 7_999,
            created_at: 1,
            ..BASE
        },
        TestProduct {
            id: "prd_02",
            title: "Backpack Rain Cover",
            description: "Keeps your backpack dry.",
            brand: "Trailco",
            tags: &["rain"],
            colour: "yellow",
            categories: &["cat_gear", "cat_bags"],
            price: 1_499,
            in_stock: false,
            created_at: 2,
            ..BASE
        },
        TestProduct {
            id: "prd_03",
            title: "Leather Wallet",
            description: "Slim wallet, fits in any backpack pocket.",
            tags: &["leather"],
            colour: "brown",
            categories: &["cat_accessories"],
            price: 3_500,
            created_at: 3,
            ..BASE
        },
        TestProduct {
            id: "prd_04",
            title: "Running Shoes",
            description: "Cushioned shoes for road running.",
            brand: "Fleet",
            tags: &["running", "backpack-friendly"],
            colour: "blue",
            categories: &["cat_shoes"],
            price: 11_000,
            created_at: 4,
            ..BASE
        },
        TestProduct {
            id: "prd_05",
            title: "Trail Running Shoes",
            description: "Grip for muddy trails.",
            brand: "Fleet",
            tags: &["running"],
            categories: &["cat_shoes"],
            price: 12_500,
            created_at: 5,
            ..BASE
        },
        TestProduct {
            id: "prd_06",
            title: "Draft Tent",
            description: "Not yet for sale.",
            status: "draft",
            ..BASE
        },
    ];
    for product in &products {
        insert_product(db, product).await;
    }
    for i in 0..20 {
        let id = format!("prd_sock_{i:02}");
        let title = format!("Wool Socks {i}");
        insert_product(
            db,
            &TestProduct {
                id: &id,
                title: &title,
                description: "Warm socks.",
                brand: "Knit",
                tags: &["socks"],
                colour: if i % 2 == 0 { "grey" } else { "black" },
                categories: &["cat_accessories", "cat_socks"],
                price: 500 + i * 100,
                in_stock: i % 3 != 0,
                created_at: 100 + i,
                ..BASE
            },
        )
        .await;
    }
}

async fn open() -> (TestDb, tempfile::TempDir, Search) {
    let db = TestDb::sqlite(&crate::MIGRATOR).await;
    fixture(&db.db).await;
    let dir = tempfile::tempdir().unwrap();
    let search = Search::open_at(&dir.path().join("idx"), db.db.clone())
        .await
        .unwrap();
    (db, dir, search)
}

fn request(q: &str) -> SearchRequest {
    SearchRequest {
        q: q.to_owned(),
        currency: "EUR".into(),
        limit: 20,
        ..SearchRequest::default()
    }
}

fn ids(results: &SearchResults) -> Vec<&str> {
    results.hits.iter().map(|h| h.id.as_str()).collect()
}

#[tokio::test]
async fn a_typo_still_finds_the_product_and_exact_matches_rank_first() {
    let (_db, _dir, search) = open().await;
    let results = search.search(request("backpak")).await.unwrap();
    assert!(ids(&results).contains(&"prd_01"), "{results:?}");
    let hit = results.hits.iter().find(|h| h.id == "prd_01").unwrap();
    assert_eq!(
        hit.snippet, "Hiking <mark>Backpack</mark> 30L",
        "typos are highlighted too"
    );
    let exact = search.search(request("backpack")).await.unwrap();
    // Title matches outrank tag and description matches.
    let mut top: Vec<&str> = ids(&exact)[..2].to_vec();
    top.sort_unstable();
    assert_eq!(top, ["prd_01", "prd_02"]);
    assert_eq!(exact.total, 4, "{exact:?}");
    assert!(
        exact.hits[0].snippet.contains("<mark>"),
        "{:?}",
        exact.hits[0]
    );
}

#[tokio::test]
async fn short_words_need_an_exact_match() {
    let (_db, _dir, search) = open().await;
    // "sock" is exact (stem of "socks"); "sick" is a typo of a 4-letter word: no fuzzy match.
    assert_eq!(search.search(request("socks")).await.unwrap().total, 20);
    assert_eq!(search.search(request("sick")).await.unwrap().total, 0);
}

#[tokio::test]
async fn draft_products_are_not_indexed() {
    let (_db, _dir, search) = open().await;
    assert_eq!(search.search(request("tent")).await.unwrap().total, 0);
    assert_eq!(search.search(request("")).await.unwrap().total, 25);
}

#[tokio::test]
async fn suggestions_complete_the_last_word() {
    let (_db, _dir, search) = open().await;
    let titles = search.suggest("back".into()).await.unwrap();
    assert!(
        titles.contains(&"Hiking Backpack 30L".to_owned()),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"Backpack Rain Cover".to_owned()),
        "{titles:?}"
    );
    let titles = search.suggest("trail run".into()).await.unwrap();
    assert_eq!(titles, ["Trail Running Shoes"]);
    assert!(search.suggest("wool".into()).await.unwrap().len() <= MAX_SUGGESTIONS);
    assert!(search.suggest("   ".into()).await.unwrap().is_empty());
}

#[tokio::test]
async fn facets_add_up_to_the_total() {
    let (_db, _dir, search) = open().await;
    for q in ["", "backpack", "shoes", "socks"] {
        let results = search.search(request(q)).await.unwrap();
        let brands: u64 = results.facets.brand.values().sum();
        let prices: u64 = results.facets.price.iter().map(|b| b.count).sum();
        let colours: u64 = results.facets.attributes["colour"].values().sum();
        assert_eq!(brands, results.total, "{q}: {:?}", results.facets);
        assert_eq!(prices, results.total, "{q}: {:?}", results.facets);
        assert_eq!(colours, results.total, "{q}: {:?}", results.facets);
    }
    let all = search.search(request("")).await.unwrap();
    assert_eq!(all.facets.brand["Knit"], 20);
    assert_eq!(all.facets.category["cat_accessories"], 21);
    let mut drill = request("");
    drill.category = Some("cat_accessories".into());
    drill.category_path = search.category_path("cat_accessories").await.unwrap();
    let drill = search.search(drill).await.unwrap();
    assert_eq!(drill.total, 21);
    assert_eq!(drill.facets.category["cat_socks"], 20);
}

#[tokio::test]
async fn filters_combine() {
    let (_db, _dir, search) = open().await;
    let mut r = request("");
    r.category = Some("cat_gear".into());
    assert_eq!(
        search.search(r.clone()).await.unwrap().total,
        2,
        "sub-categories included"
    );
    r.in_stock = Some(true);
    assert_eq!(ids(&search.search(r.clone()).await.unwrap()), ["prd_01"]);
    r.in_stock = None;
    r.max_price = Some(1_499);
    assert_eq!(ids(&search.search(r.clone()).await.unwrap()), ["prd_02"]);

    let mut r = request("shoes");
    r.brand = Some("Fleet".into());
    r.min_price = Some(12_000);
    assert_eq!(ids(&search.search(r.clone()).await.unwrap()), ["prd_05"]);
    r.currency = "USD".into();
    r.min_price = Some(11_100);
    r.max_price = Some(11_100);
    let usd = search.search(r).await.unwrap();
    assert_eq!(ids(&usd), ["prd_04"]);
    assert_eq!(usd.hits[0].price, Some(11_100));
    let mut r = request("socks");
    r.brand = Some("Trailco".into());
    assert_eq!(search.search(r).await.unwrap().total, 0);
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_in_every_order() {
    let (_db, _dir, search) = open().await;
    for sort in [
        Sort::Relevance,
        Sort::PriceAsc,
        Sort::PriceDesc,
        Sort::Newest,
    ] {
        for q in ["", "socks"] {
            let mut r = request(q);
            r.sort = sort;
            r.limit = 3;
            let mut seen = Vec::new();
            let mut prices = Vec::new();
            loop {
                let page = search.search(r.clone()).await.unwrap();
                seen.extend(page.hits.iter().map(|h| h.id.clone()));
                prices.extend(page.hits.iter().map(|h| h.price.unwrap_or(0)));
                match page.next_offset {
                    Some(next) => r.offset = next,
                    None => {
                        assert_eq!(seen.len() as u64, page.total);
                        break;
                    }
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "{sort:?} {q:?}: {seen:?}");
            if sort == Sort::PriceAsc {
                assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
            }
            if sort == Sort::PriceDesc {
                assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_refreshed_product_is_searchable_after_commit() {
    let (db, _dir, search) = open().await;
    sqlx::query("UPDATE products SET title = 'Hiking Rucksack 30L' WHERE id = 'prd_01'")
        .execute(db.db.pool())
        .await
        .unwrap();
    search.refresh("prd_01").await.unwrap();
    search.commit().await.unwrap();
    assert_eq!(
        ids(&search.search(request("rucksack")).await.unwrap()),
        ["prd_01"]
    );
    sqlx::query("UPDATE products SET status = 'archived' WHERE id = 'prd_01'")
        .execute(db.db.pool())
        .await
        .unwrap();
    search.refresh("prd_01").await.unwrap();
    search.commit().await.unwrap();
    assert_eq!(search.search(request("rucksack")).await.unwrap().total, 0);
}

#[tokio::test]
async fn a_product_event_is_searchable_within_one_second() {
    let (db, dir, search) = open().await;
    mercato_bus::migrate(&db.db).await.unwrap();
    let bus = Bus::embedded(&dir.path().join("bus")).await.unwrap();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    search.spawn_committer(shutdown.clone(), &tasks);
    search.spawn_consumer(&bus, shutdown.clone(), &tasks);

    sqlx::query("UPDATE products SET title = 'Summit Daypack' WHERE id = 'prd_01'")
        .execute(db.db.pool())
        .await
        .unwrap();
    let event = Event::new(
        "mercato/catalog",
        subjects::PRODUCT_UPDATED,
        serde_json::json!({"id": "prd_01"}),
    )
    .unwrap();
    let started = Instant::now();
    bus.publish(&event).await.unwrap();
    loop {
        if search.search(request("daypack")).await.unwrap().total == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not searchable within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn reopening_and_rebuilding_give_the_same_results() {
    let (db, dir, search) = open().await;
    let queries = ["", "backpak", "running shoes", "socks"];
    let mut before = Vec::new();
    for q in queries {
        before.push(search.search(request(q)).await.unwrap());
    }
    drop(search);
    let reopened = Search::open_at(&dir.path().join("idx"), db.db.clone())
        .await
        .unwrap();
    let fresh = Search::in_ram(db.db.clone()).unwrap();
    assert_eq!(fresh.rebuild().await.unwrap(), 25);
    for (q, expected) in queries.iter().zip(&before) {
        assert_eq!(&reopened.search(request(q)).await.unwrap(), expected, "{q}");
        assert_eq!(&fresh.search(request(q)).await.unwrap(), expected, "{q}");
    }
}

#[tokio::test]
async fn an_index_of_another_schema_version_is_rebuilt() {
    let (db, dir, search) = open().await;
    drop(search);
    let idx = dir.path().join("idx");
    std::fs::write(idx.join("mercato-schema-version"), "0").unwrap();
    let reopened = Search::open_at(&idx, db.db.clone()).await.unwrap();
    assert_eq!(reopened.search(request("")).await.unwrap().total, 25);
}

#[test]
fn the_product_id_comes_from_the_data_or_the_subject() {
    let event = |data| Event::new("t", "product.updated", data).unwrap();
    assert_eq!(
        product_id(&event(serde_json::json!({"id": "prd_1"}))).as_deref(),
        Some("prd_1")
    );
    let nested = event(serde_json::json!({"product": {"id": "prd_2"}}));
    assert_eq!(product_id(&nested).as_deref(), Some("prd_2"));
    let subject = event(serde_json::json!({})).with_subject("prd_3");
    assert_eq!(product_id(&subject).as_deref(), Some("prd_3"));
    assert_eq!(product_id(&event(serde_json::json!({}))), None);
}
