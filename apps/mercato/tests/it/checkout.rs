//! Checkout through the gateway of one `mercato up` process: a shopper registers, fills a
//! cart and pays; a declined card cancels; a process killed in the middle of a checkout
//! finishes it after the restart. On SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.

use std::path::Path;
use std::time::{Duration, Instant};

use mercato_store::{Db, PoolSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Platform, trusted_keys};

const GOOD_CARD: &str = "4242424242424242";
const DECLINED_CARD: &str = "4000000000000002";

/// The platform plus a staff token it trusts and where each service's database is.
struct Shop {
    platform: Platform,
    staff: String,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Shop {
    async fn start(database: Option<String>, extra: Vec<(String, String)>) -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let (keys, jwks_var) = trusted_keys(dir.path());
        let mut env = vec![jwks_var, ("GATEWAY_RATE_LIMIT_RPS".into(), "0".into())];
        if let Some(url) = &database {
            env.push(("DATABASE_URL".into(), url.clone()));
        }
        env.extend(extra);
        let platform = Platform::start(&dir.path().join("data"), env).await;
        Shop {
            platform,
            staff: keys.token_for("usr_ops", &["staff"], None),
            database,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .platform
            .client
            .request(method, self.platform.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body), None)
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None, None)
            .await
    }

    /// A product `sku` at 25.00 EUR with `units` in stock.
    async fn product(&self, sku: &str, units: i64) {
        let product = json!({"title": "E2E tee", "status": "active",
            "variants": [{"sku": sku, "prices": [{"amount": 2500, "currency": "EUR"}]}]});
        let (status, body) = self
            .post("/api/v1/products", Some(&self.staff), product)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let warehouse = json!({"code": "E2E", "name": "E2E", "country": "DE", "priority": 1});
        let (status, body) = self
            .post("/api/v1/warehouses", Some(&self.staff), warehouse)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let receipt = json!({"sku": sku, "warehouse_id": body["id"], "delta": units,
                             "reason": "receipt"});
        let (status, body) = self
            .post("/api/v1/stock/adjustments", Some(&self.staff), receipt)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Registers a shopper; returns their token.
    async fn shopper(&self, email: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery staple",
                       "name": "Shopper"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A new cart of `token` with `units` of `sku`, checked out with `card`.
    async fn buy(&self, token: &str, sku: &str, units: i64, card: &str, key: &str) -> Value {
        let (status, cart) = self
            .post("/api/v1/carts", Some(token), json!({"currency": "EUR"}))
            .await;
        assert!(status.is_success(), "{cart}");
        let cart = cart["id"].as_str().unwrap().to_owned();
        let (status, body) = self
            .post(
                &format!("/api/v1/carts/{cart}/items"),
                Some(token),
                json!({"sku": sku, "quantity": units}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let body = json!({
            "cart_id": cart,
            "email": "shopper@example.com",
            "shipping_address": {"name": "Ada", "line1": "Hauptstraße 1", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "payment_method": {"type": "card", "card": {"number": card, "exp_month": 12,
                                                         "exp_year": 2040, "cvc": "123"}},
        });
        let (status, order) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/checkout",
                Some(token),
                Some(body),
                Some(key),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        order
    }

    /// `(on_hand, available)` of `sku`.
    async fn stock(&self, sku: &str) -> (i64, i64) {
        let (status, body) = self
            .get(&format!("/api/v1/stock/{sku}"), Some(&self.staff))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["on_hand"].as_i64().unwrap(),
            body["available"].as_i64().unwrap(),
        )
    }

    /// A service's database, opened beside the running platform.
    async fn db(&self, service: &str) -> Db {
        let url = mercato_store::service_database_url(
            service,
            None,
            self.database.as_deref(),
            &self.platform.data_dir,
        );
        Db::connect(&url, &PoolSettings::default()).await.unwrap()
    }

    async fn scalar(&self, service: &str, sql: &str) -> i64 {
        let db = self.db(service).await;
        let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(db.pool())
            .await
            .unwrap();
        db.close().await;
        n
    }

    async fn charges(&self) -> i64 {
        self.scalar(
            "payments",
            "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'",
        )
        .await
    }
}

async fn buy_and_decline(database: Option<String>) {
    let shop = Shop::start(database, Vec::new()).await;
    shop.product("E2E-TEE", 5).await;
    let shopper = shop.shopper("shopper@example.com").await;

    let order = shop.buy(&shopper, "E2E-TEE", 2, GOOD_CARD, "e2e-1").await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(shop.stock("E2E-TEE").await, (3, 3), "stock went down");
    let payment = order["payment_id"].as_str().unwrap();
    let (status, body) = shop
        .get(&format!("/api/v1/payments/{payment}"), Some(&shop.staff))
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("succeeded")),
        "{body}"
    );
    assert_eq!(body["amount"], 5000);
    assert_eq!(shop.charges().await, 1, "one payment");
    let receipts = shop
        .scalar(
            "orders",
            "SELECT COUNT(*) FROM outbox WHERE subject = 'notification.email' \
             AND payload LIKE '%order_receipt%'",
        )
        .await;
    assert_eq!(receipts, 1, "one receipt email event");
    let (status, mine) = shop.get("/api/v1/orders", Some(&shopper)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["data"][0]["id"], order["id"]);

    let order = shop
        .buy(&shopper, "E2E-TEE", 1, DECLINED_CARD, "e2e-2")
        .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(shop.stock("E2E-TEE").await, (3, 3), "stock unchanged");
    assert_eq!(shop.charges().await, 1, "no charge");
}

#[tokio::test]
async fn a_shopper_buys_through_the_gateway_and_a_declined_card_changes_nothing() {
    buy_and_decline(None).await;
    if let Ok(pg) = std::env::var("TEST_DATABASE_URL") {
        buy_and_decline(Some(mercato_store::testing::fresh_postgres_url(&pg))).await;
    }
}

/// Waits until order `id` leaves `pending`; returns its status.
async fn settled_status(shop: &Shop, token: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, order) = shop.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        let status = order["status"].as_str().unwrap_or_default().to_owned();
        if status != "pending" {
            return status;
        }
        assert!(Instant::now() < deadline, "order still pending after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_process_killed_mid_checkout_finishes_every_order_after_a_restart() {
    for step in ["created", "reserved", "payment_created", "charged"] {
        let crash = vec![("ORDERS_SAGA_CRASH_AFTER".to_owned(), step.to_owned())];
        let mut shop = Shop::start(None, crash).await;
        shop.product("E2E-LAMP", 4).await;
        let shopper = shop.shopper("lamp@example.com").await;
        let order = shop.buy(&shopper, "E2E-LAMP", 2, GOOD_CARD, "crash").await;
        assert_eq!(
            order["status"], "pending",
            "{step}: the saga stopped after {step}"
        );
        let id = order["id"].as_str().unwrap().to_owned();

        shop.platform.kill();
        shop.platform
            .env
            .retain(|(k, _)| k != "ORDERS_SAGA_CRASH_AFTER");
        shop.platform.restart().await;
        let status = settled_status(&shop, &shopper, &id).await;
        assert_eq!(status, "paid", "{step}");
        assert_eq!(shop.charges().await, 1, "{step}: charged once");
        assert_eq!(
            shop.stock("E2E-LAMP").await,
            (2, 2),
            "{step}: stock conserved"
        );
        assert!(Path::new(&shop.platform.data_dir).exists());
    }
}

#[tokio::test]
async fn the_gateway_caches_catalog_answers_until_a_product_changes() {
    // A minute of freshness: only the invalidation can show the new title within the test.
    let shop = Shop::start(None, vec![("GATEWAY_CACHE_TTL_MS".into(), "60000".into())]).await;
    let product = json!({"title": "Cached tee", "status": "active",
        "variants": [{"sku": "E2E-CACHE", "prices": [{"amount": 1000, "currency": "EUR"}]}]});
    let (status, created) = shop
        .post("/api/v1/products", Some(&shop.staff), product)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
    let url = shop.platform.url(&path);
    let first = shop.platform.client.get(&url).send().await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    // The creation's own product event may still empty the cache once after this first
    // answer: the entry is then filled again, and served from the cache from there on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        let answer = shop.platform.client.get(&url).send().await.unwrap();
        if answer.headers()["x-cache"] == "HIT" {
            break answer;
        }
        assert!(Instant::now() < deadline, "never served from the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let etag = second.headers()["etag"].clone();
    let revalidated = shop
        .platform
        .client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    let (status, body) = shop
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&shop.staff),
            Some(json!({"title": "Renamed tee"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The product.updated event empties the cache: the new title shows without waiting for
    // the entry's TTL.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, product) = shop.get(&path, None).await;
        if product["title"] == "Renamed tee" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the cached title: {product}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
