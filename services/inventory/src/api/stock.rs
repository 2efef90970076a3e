//! `/api/v1/stock`: levels per SKU, adjustments, the movements ledger, low-stock thresholds
//! and the live stream.
//!
//! A SKU containing `/` is sent percent-encoded (`%2F`) in a path; the SKUs `low` and `stream`
//! can only be read with `?skus=`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use futures::Stream;
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::id::parse_id;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{AppState, check_sku, parse_sku_list};
use crate::domain::{MAX_QUANTITY, MovementKind};
use crate::feed::StockTick;
use crate::ledger::{Adjustment, Change};
use crate::store::{self, MovementRow};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stock", get(batch_stock))
        .route("/api/v1/stock/adjustments", post(adjust_stock))
        .route("/api/v1/stock/low", get(low_stock))
        .route("/api/v1/stock/stream", get(stream_stock))
        .route("/api/v1/stock/{sku}", get(get_stock))
        .route("/api/v1/stock/{sku}/movements", get(list_movements))
        .route(
            "/api/v1/stock/{sku}/threshold",
            axum::routing::put(set_threshold),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        get_stock,
        batch_stock,
        adjust_stock,
        list_movements,
        set_threshold,
        low_stock,
        stream_stock
    ),
    components(schemas(
        StockView,
        WarehouseStock,
        AdjustmentRequest,
        AdjustmentResponse,
        Movement,
        ThresholdRequest,
        LowStock,
        StockTick
    ))
)]
pub struct Doc;

/// A SKU's stock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StockView {
    /// The SKU.
    pub sku: String,
    /// Units in all warehouses.
    pub on_hand: i64,
    /// Units held by active reservations.
    pub reserved: i64,
    /// Units that can be reserved now (active warehouses only).
    pub available: i64,
    /// Its own low-stock threshold, if set (else the platform default applies).
    pub low_stock_threshold: Option<i64>,
    /// Stock per warehouse, in allocation order.
    pub by_warehouse: Vec<WarehouseStock>,
}

/// A SKU's stock in one warehouse.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WarehouseStock {
    /// `wh_…`.
    pub warehouse_id: String,
    /// The warehouse's code.
    pub code: String,
    /// Whether the warehouse gives new reservations.
    pub active: bool,
    /// Units there.
    pub on_hand: i64,
    /// Units held there.
    pub reserved: i64,
    /// Units that can be reserved there.
    pub available: i64,
}

async fn view(state: &AppState, sku: &str) -> Result<Option<StockView>, ApiError> {
    let mut conn = state.ledger.db().pool().acquire().await?;
    let Some(known) = store::find_sku(&mut conn, sku).await? else {
        return Ok(None);
    };
    let by_warehouse: Vec<WarehouseStock> = store::levels(&mut conn, sku)
        .await?
        .into_iter()
        .map(|l| WarehouseStock {
            available: if l.active == 1 {
                l.on_hand - l.reserved
            } else {
                0
            },
            warehouse_id: l.warehouse_id,
            code: l.code,
            active: l.active == 1,
            on_hand: l.on_hand,
            reserved: l.reserved,
        })
        .collect();
    Ok(Some(StockView {
        sku: known.sku,
        on_hand: by_warehouse.iter().map(|w| w.on_hand).sum(),
        reserved: by_warehouse.iter().map(|w| w.reserved).sum(),
        available: by_warehouse.iter().map(|w| w.available).sum(),
        low_stock_threshold: known.low_stock_threshold,
        by_warehouse,
    }))
}

/// A SKU's stock, in total and per warehouse.
#[utoipa::path(
    get, path = "/api/v1/stock/{sku}", tag = "stock",
    params(("sku" = String, Path)),
    responses((status = 200, body = StockView), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_stock(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(sku): Path<String>,
) -> Result<axum::Json<StockView>, ApiError> {
    check_sku("sku", &sku).map_err(|e| ApiError::validation(vec![e]))?;
    let view = view(&state, &sku)
        .await?
        .ok_or_else(|| ApiError::not_found("sku"))?;
    Ok(axum::Json(view))
}

/// `?skus=a,b,c`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SkusQuery {
    /// Comma-separated SKUs, at most 200.
    pub skus: Option<String>,
}

/// The stock of several SKUs; unknown ones are left out.
#[utoipa::path(
    get, path = "/api/v1/stock", tag = "stock",
    params(SkusQuery),
    responses((status = 200, body = [StockView]), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn batch_stock(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Query(query): Query<SkusQuery>,
) -> Result<axum::Json<Vec<StockView>>, ApiError> {
    let skus = parse_sku_list(query.skus.as_deref())?;
    let mut views = Vec::with_capacity(skus.len());
    for sku in &skus {
        if let Some(view) = view(&state, sku).await? {
            views.push(view);
        }
    }
    Ok(axum::Json(views))
}

/// A manual change: exactly one of `delta` and `set`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// The SKU; receiving units of a new SKU registers it.
    pub sku: String,
    /// `wh_…`.
    pub warehouse_id: String,
    /// Units to add (or, negative, remove); not 0.
    pub delta: Option<i64>,
    /// Counted units to set on hand to.
    pub set: Option<i64>,
    /// `receipt` (delta > 0), `return` (delta > 0) or `adjustment`.
    pub reason: String,
    /// Delivery note, RMA or count number, ≤ 100 characters.
    pub reference: Option<String>,
    /// Free text, ≤ 500 characters.
    pub note: Option<String>,
}

/// The change made and the SKU's stock after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdjustmentResponse {
    /// The ledger row written.
    pub movement: Movement,
    /// The SKU's stock after it.
    pub stock: StockView,
}

fn parse_adjustment(req: AdjustmentRequest) -> Result<Adjustment, ApiError> {
    let mut errors = Vec::new();
    if let Err(e) = check_sku("sku", &req.sku) {
        errors.push(e);
    }
    if parse_id("wh", &req.warehouse_id, "warehouse_id").is_err() {
        errors.push(FieldError::new(
            "warehouse_id",
            "invalid_id",
            "expected an id starting with `wh_`",
        ));
    }
    let kind = MovementKind::parse(&req.reason).filter(|k| k.is_manual());
    if kind.is_none() {
        errors.push(FieldError::new(
            "reason",
            "invalid",
            "one of `receipt`, `adjustment`, `return`",
        ));
    }
    let change = match (req.delta, req.set) {
        (Some(d), None) if d != 0 && d.abs() <= MAX_QUANTITY => Some(Change::Delta(d)),
        (None, Some(n)) if (0..=MAX_QUANTITY).contains(&n) => Some(Change::Set(n)),
        (Some(_), None) => {
            errors.push(FieldError::new(
                "delta",
                "out_of_range",
                format!("a non-zero number of units, at most {MAX_QUANTITY} either way"),
            ));
            None
        }
        (None, Some(_)) => {
            errors.push(FieldError::new(
                "set",
                "out_of_range",
                format!("0 to {MAX_QUANTITY} units"),
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                "delta",
                "required",
                "give exactly one of `delta` and `set`",
            ));
            None
        }
    };
    if let (Some(k), Some(c)) = (kind, change) {
        let adds = matches!(c, Change::Delta(d) if d > 0);
        if matches!(k, MovementKind::Receipt | MovementKind::Return) && !adds {
            errors.push(FieldError::new(
                "delta",
                "must_be_positive",
                "receipts and returns add units: give a positive `delta`",
            ));
        }
    }
    if req
        .reference
        .as_ref()
        .is_some_and(|r| r.chars().count() > 100)
    {
        errors.push(FieldError::new(
            "reference",
            "too_long",
            "at most 100 characters",
        ));
    }
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        errors.push(FieldError::new(
            "note",
            "too_long",
            "at most 500 characters",
        ));
    }
    match (kind, change) {
        (Some(kind), Some(change)) if errors.is_empty() => Ok(Adjustment {
            sku: req.sku,
            warehouse_id: req.warehouse_id,
            change,
            kind,
            reference: req.reference,
            note: req.note,
        }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Receive, count, correct or take back stock.
#[utoipa::path(
    post, path = "/api/v1/stock/adjustments", tag = "stock",
    request_body = AdjustmentRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = AdjustmentResponse),
        (status = 409, description = "Would fall below reserved or zero", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = []))
)]
async fn adjust_stock(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Json(req): Json<AdjustmentRequest>,
) -> Result<(StatusCode, axum::Json<AdjustmentResponse>), ApiError> {
    let adjustment = parse_adjustment(req)?;
    let movement = state.ledger.adjust(&adjustment, &claims.sub).await?;
    state.feed.poke();
    let stock = view(&state, &adjustment.sku)
        .await?
        .ok_or_else(|| ApiError::not_found("sku"))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AdjustmentResponse {
            movement: movement.into(),
            stock,
        }),
    ))
}

/// A ledger row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Movement {
    /// `mov_…`.
    pub id: String,
    /// The SKU.
    pub sku: String,
    /// `wh_…`.
    pub warehouse_id: String,
    /// `receipt`, `adjustment`, `reservation`, `release`, `commit` or `return`.
    pub reason: MovementKind,
    /// Change of on-hand units.
    pub on_hand_delta: i64,
    /// Change of reserved units.
    pub reserved_delta: i64,
    /// On-hand units in that warehouse after it.
    pub on_hand_after: i64,
    /// Reserved units in that warehouse after it.
    pub reserved_after: i64,
    /// Reservation id or document number.
    pub reference: Option<String>,
    /// Free text (`expired` for a reservation that timed out).
    pub note: Option<String>,
    /// User id, or `system`.
    pub actor: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<MovementRow> for Movement {
    fn from(m: MovementRow) -> Self {
        Self {
            reason: store::movement_kind(&m.kind),
            id: m.id,
            sku: m.sku,
            warehouse_id: m.warehouse_id,
            on_hand_delta: m.on_hand_delta,
            reserved_delta: m.reserved_delta,
            on_hand_after: m.on_hand_after,
            reserved_after: m.reserved_after,
            reference: m.reference,
            note: m.note,
            actor: m.actor,
            created_at: rfc3339(m.created_at),
        }
    }
}

/// A SKU's ledger, newest first.
#[utoipa::path(
    get, path = "/api/v1/stock/{sku}/movements", tag = "stock",
    params(("sku" = String, Path), PageParams),
    responses((status = 200, body = Page<Movement>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn list_movements(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(sku): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Page<Movement>>, ApiError> {
    check_sku("sku", &sku).map_err(|e| ApiError::validation(vec![e]))?;
    let page = params.parse()?;
    let mut conn = state.ledger.db().pool().acquire().await?;
    if store::find_sku(&mut conn, &sku).await?.is_none() {
        return Err(ApiError::not_found("sku"));
    }
    let rows = store::movements(&mut conn, &sku, page.after.as_deref(), page.fetch_limit()).await?;
    let page = Page::from_rows(rows, &page, |m| m.id.clone()).map(Movement::from);
    Ok(axum::Json(page))
}

/// A SKU's own low-stock threshold; `null` returns it to the platform default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRequest {
    /// Alert when available units fall to this or below; 0 to 1 000 000 000.
    pub threshold: Option<i64>,
}

/// Set a SKU's low-stock threshold.
#[utoipa::path(
    put, path = "/api/v1/stock/{sku}/threshold", tag = "stock",
    params(("sku" = String, Path)),
    request_body = ThresholdRequest,
    responses((status = 200, body = StockView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn set_threshold(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(sku): Path<String>,
    Json(req): Json<ThresholdRequest>,
) -> Result<axum::Json<StockView>, ApiError> {
    check_sku("sku", &sku).map_err(|e| ApiError::validation(vec![e]))?;
    if req
        .threshold
        .is_some_and(|t| !(0..=MAX_QUANTITY).contains(&t))
    {
        return Err(ApiError::invalid_field(
            "threshold",
            "out_of_range",
            format!("0 to {MAX_QUANTITY}"),
        ));
    }
    state.ledger.set_threshold(&sku, req.threshold).await?;
    let view = view(&state, &sku)
        .await?
        .ok_or_else(|| ApiError::not_found("sku"))?;
    Ok(axum::Json(view))
}

/// A SKU at or below its threshold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LowStock {
    /// The SKU.
    pub sku: String,
    /// Units that can be reserved now.
    pub available: i64,
    /// Units in all warehouses.
    pub on_hand: i64,
    /// Units held.
    pub reserved: i64,
    /// The threshold in force.
    pub threshold: i64,
}

/// SKUs at or below their low-stock threshold, fewest available first (at most 500).
#[utoipa::path(
    get, path = "/api/v1/stock/low", tag = "stock",
    responses((status = 200, body = [LowStock])),
    security(("bearer" = []))
)]
async fn low_stock(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<axum::Json<Vec<LowStock>>, ApiError> {
    let mut conn = state.ledger.db().pool().acquire().await?;
    let rows = store::low_skus(&mut conn, state.ledger.default_threshold(), 500).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(t, threshold)| LowStock {
                sku: t.sku,
                available: t.available.max(0),
                on_hand: t.on_hand,
                reserved: t.reserved,
                threshold,
            })
            .collect(),
    ))
}

/// Live stock as Server-Sent Events: a `stock` event per SKU at once, then one whenever its
/// available units change. Public: it tells only what a product page shows.
#[utoipa::path(
    get, path = "/api/v1/stock/stream", tag = "stock",
    params(SkusQuery),
    responses(
        (status = 200, description = "`text/event-stream` of `stock` events", body = StockTick, content_type = "text/event-stream"),
        (status = 422, body = Problem),
    )
)]
async fn stream_stock(
    State(state): State<AppState>,
    Query(query): Query<SkusQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let skus = parse_sku_list(query.skus.as_deref())?;
    // Subscribe before reading the snapshot, so no change falls between the two.
    let receiver = state.feed.subscribe();
    let mut first = Vec::with_capacity(skus.len());
    {
        let mut conn = state.ledger.db().pool().acquire().await?;
        for sku in &skus {
            let available = store::totals(&mut conn, sku).await?.available.max(0);
            first.push(StockTick {
                sku: sku.clone(),
                available,
                in_stock: available > 0,
            });
        }
    }
    // The feed may repeat a level this stream already sent (its look reaches back a few
    // seconds); `last` keeps each stream to changes.
    let last: HashMap<String, i64> = first.iter().map(|t| (t.sku.clone(), t.available)).collect();
    let stream = futures::stream::unfold(
        (
            VecDeque::from(first),
            receiver,
            last,
            state.ledger.db().clone(),
        ),
        |(mut queue, mut receiver, mut last, db)| async move {
            loop {
                if let Some(tick) = queue.pop_front() {
                    return Some((tick_event(&tick), (queue, receiver, last, db)));
                }
                match receiver.recv().await {
                    Ok(tick) => {
                        if let Some(sent) = last.get_mut(&tick.sku)
                            && *sent != tick.available
                        {
                            *sent = tick.available;
                            queue.push_back(tick);
                        }
                    }
                    // Changes were dropped while this stream was slow: read its SKUs again
                    // rather than show a stale level until their next change.
                    Err(RecvError::Lagged(_)) => {
                        for (sku, sent) in &mut last {
                            let Ok(mut conn) = db.pool().acquire().await else {
                                break;
                            };
                            let Ok(totals) = store::totals(&mut conn, sku).await else {
                                continue;
                            };
                            let available = totals.available.max(0);
                            if *sent != available {
                                *sent = available;
                                queue.push_back(StockTick {
                                    sku: sku.clone(),
                                    available,
                                    in_stock: available > 0,
                                });
                            }
                        }
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn tick_event(tick: &StockTick) -> Result<SseEvent, Infallible> {
    let data = serde_json::to_string(tick).unwrap_or_default();
    Ok(SseEvent::default().event("stock").data(data))
}
