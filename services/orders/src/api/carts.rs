//! `/api/v1/carts`: a guest's or a customer's cart, priced live by the catalog (promotions,
//! coupon), with shipping and tax once a destination is known.
//!
//! A guest cart is reached by its id alone; a customer's cart only by its customer (and
//! staff): anyone else gets 404. Adding more units than inventory can sell answers 409
//! `insufficient_stock` with what is available.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use mercato_kernel::auth::{Claims, MaybeClaims};
use mercato_kernel::error::Problem;
use mercato_kernel::money::Currency;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path};
use mercato_store::{is_unique_violation, now_micros};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AppState, is_staff};
use crate::checkout::{Checkout, relay};
use crate::domain::{self, MAX_ITEMS, MAX_QUANTITY, ShippingLine};
use crate::store::{self, CartRow, ItemRow};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/carts", post(create_cart))
        .route(
            "/api/v1/carts/{id}",
            axum::routing::get(get_cart).patch(update_cart),
        )
        .route("/api/v1/carts/{id}/items", post(add_item))
        .route(
            "/api/v1/carts/{id}/items/{item_id}",
            patch(update_item).delete(remove_item),
        )
        .route(
            "/api/v1/carts/{id}/coupon",
            post(apply_coupon).delete(remove_coupon),
        )
        .route("/api/v1/carts/{id}/merge", post(merge_cart))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_cart,
        get_cart,
        update_cart,
        add_item,
        update_item,
        remove_item,
        apply_coupon,
        remove_coupon,
        merge_cart
    ),
    components(schemas(
        NewCart,
        CartUpdate,
        NewItem,
        ItemUpdate,
        CouponRequest,
        CartView,
        CartItemView,
        ShippingLine,
        domain::TaxLine
    ))
)]
pub struct Doc;

/// A cart to open.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    /// ISO 4217: every price of the cart is in it.
    pub currency: String,
    /// For the receipt, and per-customer promotion limits of guests.
    pub email: Option<String>,
    /// Destination country for shipping and tax estimates.
    pub country: Option<String>,
    /// Destination region (state, province) for regional tax.
    pub region: Option<String>,
}

/// Changes to a cart's details.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartUpdate {
    /// Buyer's email.
    pub email: Option<String>,
    /// Destination country.
    pub country: Option<String>,
    /// Destination region.
    pub region: Option<String>,
}

/// Units of a SKU to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Variant SKU.
    pub sku: String,
    /// 1 to 10 000 units (added to what the cart already has of the SKU).
    pub quantity: i64,
}

/// A new quantity for an item.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpdate {
    /// 1 to 10 000 units.
    pub quantity: i64,
}

/// A coupon code to apply.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    /// The code, case-insensitive.
    pub code: String,
}

/// An item with its price.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartItemView {
    /// `ci_…`.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Product title.
    pub title: String,
    /// Units.
    pub quantity: i64,
    /// Price of one unit.
    pub unit_price: i64,
    /// `unit_price × quantity`.
    pub subtotal: i64,
    /// Promotions' part.
    pub discount_total: i64,
    /// Tax of the line (inside `total` for inclusive rates).
    pub tax: i64,
    /// `subtotal − discount_total`.
    pub total: i64,
    /// How the amounts were computed: discounts with their reasons, the tax rate.
    #[schema(value_type = Object)]
    pub explanation: Value,
}

/// A cart and its totals, in minor units of `currency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartView {
    /// `cart_…`.
    pub id: String,
    /// The customer, absent for a guest cart.
    pub customer_id: Option<String>,
    /// ISO 4217.
    pub currency: String,
    /// `open`, `merged` or `converted` (checked out).
    pub status: String,
    /// Coupon code applied.
    pub coupon: Option<String>,
    /// Buyer's email.
    pub email: Option<String>,
    /// Destination country.
    pub country: Option<String>,
    /// Destination region.
    pub region: Option<String>,
    /// The order it became.
    pub order_id: Option<String>,
    /// Items, oldest first.
    pub items: Vec<CartItemView>,
    /// Σ item subtotals.
    pub subtotal: i64,
    /// Σ discounts.
    pub discount_total: i64,
    /// Shipping, once a country is known.
    pub shipping: Option<ShippingLine>,
    /// Σ tax.
    pub tax_total: i64,
    /// What checkout would charge now.
    pub total: i64,
    /// Promotions applied.
    #[schema(value_type = Vec<Object>)]
    pub applied_promotions: Vec<Value>,
    /// Promotions (and coupons) not applied, with why.
    #[schema(value_type = Vec<Object>)]
    pub rejected_promotions: Vec<Value>,
    /// Why the cart cannot be priced now (an item no longer for sale, no shipping).
    pub pricing_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn view_of(cart: CartRow, items: Vec<ItemRow>) -> CartView {
    CartView {
        items: items
            .into_iter()
            .map(|i| CartItemView {
                id: i.id,
                title: String::new(),
                sku: i.sku,
                quantity: i.quantity,
                unit_price: 0,
                subtotal: 0,
                discount_total: 0,
                tax: 0,
                total: 0,
                explanation: Value::Null,
            })
            .collect(),
        id: cart.id,
        customer_id: cart.customer_id,
        currency: cart.currency,
        status: cart.status,
        coupon: cart.coupon,
        email: cart.email,
        country: cart.country,
        region: cart.region,
        order_id: cart.order_id,
        subtotal: 0,
        discount_total: 0,
        shipping: None,
        tax_total: 0,
        total: 0,
        applied_promotions: Vec::new(),
        rejected_promotions: Vec::new(),
        pricing_error: None,
        created_at: rfc3339(cart.created_at),
        updated_at: rfc3339(cart.updated_at),
    }
}

/// The cart with live prices; a cart the catalog refuses to price shows why.
async fn priced_view(checkout: &Checkout, cart: CartRow) -> Result<CartView, ApiError> {
    let items = store::items(&mut *checkout.db().pool().acquire().await?, &cart.id).await?;
    if items.is_empty() || cart.status != "open" {
        return Ok(view_of(cart, items));
    }
    let destination = cart.country.clone().map(|c| (c, cart.region.clone()));
    let priced = checkout
        .price(
            &cart,
            &items,
            destination
                .as_ref()
                .map(|(c, r)| (c.as_str(), r.as_deref())),
        )
        .await;
    let mut view = view_of(cart, items);
    match priced {
        Ok(priced) => {
            for (item, line) in view.items.iter_mut().zip(&priced.totals.lines) {
                let q = &line.quoted;
                item.title.clone_from(&q.title);
                item.unit_price = q.unit_price;
                item.subtotal = q.subtotal;
                item.discount_total = q.discount_total;
                item.tax = line.tax.as_ref().map_or(0, |t| t.amount);
                item.total = q.total;
                item.explanation = serde_json::json!({
                    "discounts": q.discounts,
                    "tax": line.tax,
                });
            }
            let t = priced.totals;
            view.subtotal = t.subtotal;
            view.discount_total = t.discount_total;
            view.shipping = t.shipping;
            view.tax_total = t.tax_total;
            view.total = t.total;
            view.applied_promotions = priced.quote.applied_promotions;
            view.rejected_promotions = priced.quote.rejected_promotions;
        }
        Err(e) if e.status().is_client_error() => view.pricing_error = Some(e.detail().to_owned()),
        Err(e) => return Err(e),
    }
    Ok(view)
}

/// The cart `id` if the caller may see it; 404 otherwise.
async fn visible_cart(
    checkout: &Checkout,
    caller: Option<&Claims>,
    id: &str,
) -> Result<CartRow, ApiError> {
    mercato_kernel::id::parse_id("cart", id, "id")?;
    let cart = store::find_cart(&mut *checkout.db().pool().acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found("cart"))?;
    let allowed = match &cart.customer_id {
        None => true,
        Some(owner) => is_staff(caller) || caller.is_some_and(|c| &c.sub == owner),
    };
    if allowed {
        Ok(cart)
    } else {
        Err(ApiError::not_found("cart"))
    }
}

/// The cart, which must still be open for changes.
async fn open_cart(
    checkout: &Checkout,
    caller: Option<&Claims>,
    id: &str,
) -> Result<CartRow, ApiError> {
    let cart = visible_cart(checkout, caller, id).await?;
    if cart.status != "open" {
        return Err(ApiError::conflict(
            "cart_not_open",
            format!("the cart is {}", cart.status),
        ));
    }
    Ok(cart)
}

fn check_destination(
    country: &mut Option<String>,
    region: &Option<String>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(c) = country {
        *c = c.trim().to_ascii_uppercase();
        if !domain::is_country(c) {
            errors.push(FieldError::new(
                "country",
                "invalid_country",
                "an ISO 3166-1 alpha-2 code such as `DE`",
            ));
        }
    }
    if region
        .as_ref()
        .is_some_and(|r| r.trim().is_empty() || r.len() > 50)
    {
        errors.push(FieldError::new(
            "region",
            "invalid_length",
            "1 to 50 characters",
        ));
    }
}

fn check_email(email: &mut Option<String>, errors: &mut Vec<FieldError>) {
    if let Some(e) = email {
        match mercato_kernel::email::Email::parse(e, "email") {
            Ok(parsed) => *e = parsed.into_string(),
            Err(problem) => errors.push(problem),
        }
    }
}

/// Open a cart. A signed-in customer who has an open cart in the currency gets it back (200).
#[utoipa::path(
    post, path = "/api/v1/carts", tag = "carts",
    request_body = NewCart,
    responses(
        (status = 201, body = CartView),
        (status = 200, description = "The customer's open cart", body = CartView),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
async fn create_cart(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Json(mut body): Json<NewCart>,
) -> Result<(StatusCode, axum::Json<CartView>), ApiError> {
    let mut errors = Vec::new();
    let currency = Currency::parse(&body.currency)
        .map_err(|e| {
            errors.push(FieldError::new(
                "currency",
                "invalid_currency",
                e.to_string(),
            ))
        })
        .ok();
    check_email(&mut body.email, &mut errors);
    check_destination(&mut body.country, &body.region, &mut errors);
    let Some(currency) = currency.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let checkout = &state.checkout;
    let currency = currency.to_string();
    let customer = caller.as_ref().map(|c| c.sub.clone());
    if let Some(customer) = &customer {
        let existing = store::open_cart_of(
            &mut *checkout.db().pool().acquire().await?,
            customer,
            &currency,
        )
        .await?;
        if let Some(cart) = existing {
            return Ok((
                StatusCode::OK,
                axum::Json(priced_view(checkout, cart).await?),
            ));
        }
    }
    let now = now_micros();
    let cart = CartRow {
        id: mercato_kernel::id::new_id("cart"),
        customer_id: customer,
        currency,
        status: "open".to_owned(),
        coupon: None,
        email: body.email,
        country: body.country,
        region: body.region.map(|r| r.trim().to_owned()),
        order_id: None,
        created_at: now,
        updated_at: now,
    };
    store::insert_cart(&mut *checkout.db().pool().acquire().await?, &cart).await?;
    Ok((StatusCode::CREATED, axum::Json(view_of(cart, Vec::new()))))
}

/// A cart with live prices.
#[utoipa::path(
    get, path = "/api/v1/carts/{id}", tag = "carts",
    params(("id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = Problem)),
    security((), ("bearer" = []))
)]
async fn get_cart(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
) -> Result<axum::Json<CartView>, ApiError> {
    let cart = visible_cart(&state.checkout, caller.as_ref(), &id).await?;
    Ok(axum::Json(priced_view(&state.checkout, cart).await?))
}

/// Set the email or the destination used for shipping and tax.
#[utoipa::path(
    patch, path = "/api/v1/carts/{id}", tag = "carts",
    params(("id" = String, Path)),
    request_body = CartUpdate,
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security((), ("bearer" = []))
)]
async fn update_cart(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
    Json(mut body): Json<CartUpdate>,
) -> Result<axum::Json<CartView>, ApiError> {
    let mut errors = Vec::new();
    check_email(&mut body.email, &mut errors);
    check_destination(&mut body.country, &body.region, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let checkout = &state.checkout;
    let mut cart = open_cart(checkout, caller.as_ref(), &id).await?;
    if body.email.is_some() {
        cart.email = body.email;
    }
    if body.country.is_some() {
        cart.country = body.country;
        cart.region = None;
    }
    if let Some(region) = body.region {
        cart.region = Some(region.trim().to_owned());
    }
    cart.updated_at = now_micros();
    store::update_cart(&mut *checkout.db().pool().acquire().await?, &cart).await?;
    Ok(axum::Json(priced_view(checkout, cart).await?))
}

fn check_quantity(quantity: i64) -> Result<(), ApiError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "quantity",
            "out_of_range",
            format!("1 to {MAX_QUANTITY}"),
        ))
    }
}

/// Refuses `quantity` units of `sku` unless the catalog sells it in the cart's currency and
/// inventory has that many available.
async fn check_sellable(
    checkout: &Checkout,
    cart: &CartRow,
    sku: &str,
    quantity: i64,
) -> Result<(), ApiError> {
    let clients = checkout.clients();
    if let Err(e) = clients
        .quote(&cart.currency, &[(sku.to_owned(), quantity)], None, None)
        .await
    {
        let problem = relay(e);
        if problem.status() == StatusCode::UNPROCESSABLE_ENTITY {
            let (code, message) = problem
                .field_errors()
                .first()
                .map(|f| (f.code.to_string(), f.message.clone()))
                .unwrap_or_else(|| ("unknown_sku".to_owned(), problem.detail().to_owned()));
            return Err(ApiError::invalid_field("sku", code, message));
        }
        return Err(problem);
    }
    let available = clients
        .stock(&[sku])
        .await
        .map_err(relay)?
        .into_iter()
        .find(|s| s.sku == sku)
        .map_or(0, |s| s.available);
    if available < quantity {
        return Err(ApiError::conflict(
            "insufficient_stock",
            format!("only {available} of `{sku}` available, {quantity} asked"),
        )
        .with_extension("sku", sku)
        .with_extension("requested", quantity)
        .with_extension("available", available));
    }
    Ok(())
}

/// Add units of a SKU (to the item of that SKU when the cart has one).
#[utoipa::path(
    post, path = "/api/v1/carts/{id}/items", tag = "carts",
    params(("id" = String, Path)),
    request_body = NewItem,
    responses(
        (status = 201, body = CartView),
        (status = 404, body = Problem),
        (status = 409, description = "Not that many available; `available` says how many", body = Problem),
        (status = 422, body = Problem),
    ),
    security((), ("bearer" = []))
)]
async fn add_item(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
    Json(body): Json<NewItem>,
) -> Result<(StatusCode, axum::Json<CartView>), ApiError> {
    if !mercato_contracts::sku::is_valid(&body.sku) {
        return Err(ApiError::invalid_field(
            "sku",
            "invalid_sku",
            mercato_contracts::sku::RULE,
        ));
    }
    check_quantity(body.quantity)?;
    let checkout = &state.checkout;
    let cart = open_cart(checkout, caller.as_ref(), &id).await?;
    let items = store::items(&mut *checkout.db().pool().acquire().await?, &cart.id).await?;
    let existing = items.iter().find(|i| i.sku == body.sku);
    let quantity = existing.map_or(0, |i| i.quantity) + body.quantity;
    check_quantity(quantity)?;
    if existing.is_none() && items.len() >= MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "sku",
            "too_many_items",
            format!("a cart holds at most {MAX_ITEMS} different SKUs"),
        ));
    }
    check_sellable(checkout, &cart, &body.sku, quantity).await?;
    let now = now_micros();
    let mut conn = checkout.db().pool().acquire().await?;
    match existing {
        Some(item) => store::set_item_quantity(&mut conn, &item.id, quantity, now).await?,
        None => {
            let item = ItemRow {
                id: mercato_kernel::id::new_id("ci"),
                cart_id: cart.id.clone(),
                sku: body.sku,
                quantity,
                created_at: now,
                updated_at: now,
            };
            store::insert_item(&mut conn, &item).await.map_err(|e| {
                if is_unique_violation(&e) {
                    ApiError::conflict("concurrent_update", "the item was added meanwhile; retry")
                } else {
                    e.into()
                }
            })?;
        }
    }
    drop(conn);
    Ok((
        StatusCode::CREATED,
        axum::Json(priced_view(checkout, cart).await?),
    ))
}

async fn cart_and_item(
    checkout: &Checkout,
    caller: Option<&Claims>,
    id: &str,
    item_id: &str,
) -> Result<(CartRow, ItemRow), ApiError> {
    let cart = open_cart(checkout, caller, id).await?;
    let item = store::items(&mut *checkout.db().pool().acquire().await?, &cart.id)
        .await?
        .into_iter()
        .find(|i| i.id == item_id)
        .ok_or_else(|| ApiError::not_found("cart item"))?;
    Ok((cart, item))
}

/// Set an item's quantity.
#[utoipa::path(
    patch, path = "/api/v1/carts/{id}/items/{item_id}", tag = "carts",
    params(("id" = String, Path), ("item_id" = String, Path)),
    request_body = ItemUpdate,
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security((), ("bearer" = []))
)]
async fn update_item(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path((id, item_id)): Path<(String, String)>,
    Json(body): Json<ItemUpdate>,
) -> Result<axum::Json<CartView>, ApiError> {
    check_quantity(body.quantity)?;
    let checkout = &state.checkout;
    let (cart, item) = cart_and_item(checkout, caller.as_ref(), &id, &item_id).await?;
    if body.quantity > item.quantity {
        check_sellable(checkout, &cart, &item.sku, body.quantity).await?;
    }
    store::set_item_quantity(
        &mut *checkout.db().pool().acquire().await?,
        &item.id,
        body.quantity,
        now_micros(),
    )
    .await?;
    Ok(axum::Json(priced_view(checkout, cart).await?))
}

/// Remove an item.
#[utoipa::path(
    delete, path = "/api/v1/carts/{id}/items/{item_id}", tag = "carts",
    params(("id" = String, Path), ("item_id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = Problem)),
    security((), ("bearer" = []))
)]
async fn remove_item(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path((id, item_id)): Path<(String, String)>,
) -> Result<axum::Json<CartView>, ApiError> {
    let checkout = &state.checkout;
    let (cart, item) = cart_and_item(checkout, caller.as_ref(), &id, &item_id).await?;
    store::delete_item(&mut *checkout.db().pool().acquire().await?, &item.id).await?;
    Ok(axum::Json(priced_view(checkout, cart).await?))
}

/// Apply a coupon; a code the catalog does not apply is 422 with its reason.
#[utoipa::path(
    post, path = "/api/v1/carts/{id}/coupon", tag = "carts",
    params(("id" = String, Path)),
    request_body = CouponRequest,
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security((), ("bearer" = []))
)]
async fn apply_coupon(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
    Json(body): Json<CouponRequest>,
) -> Result<axum::Json<CartView>, ApiError> {
    let code = body.code.trim().to_owned();
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::invalid_field(
            "code",
            "invalid_length",
            "1 to 64 characters",
        ));
    }
    let checkout = &state.checkout;
    let mut cart = open_cart(checkout, caller.as_ref(), &id).await?;
    let items = store::items(&mut *checkout.db().pool().acquire().await?, &cart.id).await?;
    if !items.is_empty() {
        let lines: Vec<(String, i64)> = items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
        let quote = checkout
            .clients()
            .quote(
                &cart.currency,
                &lines,
                Some(&code),
                cart.customer_id.as_deref(),
            )
            .await
            .map_err(relay)?;
        let rejected = quote.rejected_promotions.iter().find(|p| {
            p.get("coupon_code")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case(&code))
        });
        if let Some(rejected) = rejected {
            let reason = rejected
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("coupon_unknown");
            let detail = rejected
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("the coupon does not apply");
            return Err(ApiError::invalid_field("code", reason.to_owned(), detail));
        }
    }
    cart.coupon = Some(code);
    cart.updated_at = now_micros();
    store::update_cart(&mut *checkout.db().pool().acquire().await?, &cart).await?;
    Ok(axum::Json(priced_view(checkout, cart).await?))
}

/// Remove the coupon.
#[utoipa::path(
    delete, path = "/api/v1/carts/{id}/coupon", tag = "carts",
    params(("id" = String, Path)),
    responses((status = 200, body = CartView), (status = 404, body = Problem)),
    security((), ("bearer" = []))
)]
async fn remove_coupon(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
) -> Result<axum::Json<CartView>, ApiError> {
    let checkout = &state.checkout;
    let mut cart = open_cart(checkout, caller.as_ref(), &id).await?;
    cart.coupon = None;
    cart.updated_at = now_micros();
    store::update_cart(&mut *checkout.db().pool().acquire().await?, &cart).await?;
    Ok(axum::Json(priced_view(checkout, cart).await?))
}

/// After sign-in: the guest cart `id` joins the customer's open cart in its currency (units
/// of a SKU in both are added up, to at most 10 000), or becomes the customer's cart.
#[utoipa::path(
    post, path = "/api/v1/carts/{id}/merge", tag = "carts",
    params(("id" = String, Path, description = "The guest cart")),
    responses((status = 200, body = CartView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
async fn merge_cart(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<axum::Json<CartView>, ApiError> {
    let checkout = &state.checkout;
    let guest = open_cart(checkout, Some(&claims), &id).await?;
    if guest.customer_id.as_deref() == Some(claims.sub.as_str()) {
        return Ok(axum::Json(priced_view(checkout, guest).await?));
    }
    if guest.customer_id.is_some() {
        return Err(ApiError::not_found("cart"));
    }
    let now = now_micros();
    let mut tx = checkout.db().begin().await?;
    let target = store::open_cart_of(&mut tx, &claims.sub, &guest.currency).await?;
    let merged = match target {
        None => {
            let mut cart = guest.clone();
            cart.customer_id = Some(claims.sub.clone());
            cart.updated_at = now;
            store::update_cart(&mut tx, &cart).await?;
            cart
        }
        Some(mut target) => {
            let mine = store::items(&mut tx, &target.id).await?;
            for item in store::items(&mut tx, &guest.id).await? {
                match mine.iter().find(|m| m.sku == item.sku) {
                    Some(m) => {
                        let quantity = (m.quantity + item.quantity).min(MAX_QUANTITY);
                        store::set_item_quantity(&mut tx, &m.id, quantity, now).await?;
                    }
                    None => {
                        let moved = ItemRow {
                            id: mercato_kernel::id::new_id("ci"),
                            cart_id: target.id.clone(),
                            ..item
                        };
                        store::insert_item(&mut tx, &moved).await?;
                    }
                }
            }
            let mut old = guest.clone();
            old.status = "merged".to_owned();
            old.updated_at = now;
            store::update_cart(&mut tx, &old).await?;
            if target.coupon.is_none() {
                target.coupon = guest.coupon.clone();
            }
            if target.email.is_none() {
                target.email = guest.email.clone();
            }
            target.updated_at = now;
            store::update_cart(&mut tx, &target).await?;
            target
        }
    };
    tx.commit().await?;
    Ok(axum::Json(priced_view(checkout, merged).await?))
}
