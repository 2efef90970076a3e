//! The dashboard at `/admin`: paid revenue, orders and checkout conversion per day over the
//! last two weeks, drawn as inline SVG charts on the server from the orders list, and the
//! day's analytics counters.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::Staff;
use crate::api::Call;
use crate::session::Visitor;
use crate::shop::query_string;
use crate::{Page, WebState};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/ops/dashboard.html",
        include_str!("../../templates/admin/ops/dashboard.html"),
    ),
    (
        "admin/ops/_chart.html",
        include_str!("../../templates/admin/ops/_chart.html"),
    ),
];

/// Routes of these pages (`/admin` itself is routed in `mod.rs`).
pub(crate) fn routes() -> axum::Router<WebState> {
    axum::Router::new().route("/admin/dashboard", axum::routing::get(dashboard))
}

/// How many days the dashboard covers, today included.
const DAYS: usize = 14;
/// Most order pages read (100 orders each); beyond that the totals say they are partial.
const MAX_PAGES: usize = 50;
/// Order statuses whose payment was taken.
const PAID: &[&str] = &[
    "paid",
    "fulfilled",
    "delivered",
    "partially_refunded",
    "refunded",
];

/// `YYYY-MM-DD` of the day `days` days after 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil_day(days: i64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The `count` days ending with `today` (days since the epoch), oldest first.
pub(crate) fn last_days(today: i64, count: usize) -> Vec<String> {
    let count = i64::try_from(count).unwrap_or(0);
    (0..count)
        .rev()
        .map(|back| civil_day(today - back))
        .collect()
}

/// Today, in days since the epoch (UTC).
fn today() -> i64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    i64::try_from(seconds / 86_400).unwrap_or_default()
}

/// One day's figures.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub(crate) struct Day {
    pub(crate) day: String,
    /// Orders placed (every checkout that created an order).
    pub(crate) orders: i64,
    /// Of those, orders whose payment was taken.
    pub(crate) paid: i64,
    /// Paid revenue net of refunds, minor units, per currency.
    pub(crate) revenue: BTreeMap<String, i64>,
}

/// The orders bucketed into `days` by the UTC day of `created_at`; orders outside are left out.
pub(crate) fn per_day(orders: &[Value], days: &[String]) -> Vec<Day> {
    let mut out: Vec<Day> = days
        .iter()
        .map(|day| Day {
            day: day.clone(),
            ..Day::default()
        })
        .collect();
    for order in orders {
        let created = order["created_at"].as_str().unwrap_or_default();
        let Some(slot) = out.iter_mut().find(|d| created.starts_with(d.day.as_str())) else {
            continue;
        };
        slot.orders += 1;
        let status = order["status"].as_str().unwrap_or_default();
        if PAID.contains(&status) {
            slot.paid += 1;
            let net = order["total"].as_i64().unwrap_or_default()
                - order["amount_refunded"].as_i64().unwrap_or_default();
            let currency = order["currency"].as_str().unwrap_or("EUR").to_owned();
            *slot.revenue.entry(currency).or_default() += net;
        }
    }
    out
}

/// One bar (or line point) of a chart, in SVG user units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Bar {
    pub(crate) x: i64,
    pub(crate) y: i64,
    pub(crate) width: i64,
    pub(crate) height: i64,
    /// Centre of the bar, for the line and the labels.
    pub(crate) cx: i64,
    pub(crate) day: String,
    pub(crate) value: i64,
}

/// A chart's geometry: bars, the same values as a polyline, and the scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Chart {
    pub(crate) width: i64,
    pub(crate) height: i64,
    /// Baseline of the plot (y of a zero value).
    pub(crate) base: i64,
    pub(crate) max: i64,
    pub(crate) bars: Vec<Bar>,
    /// `x,y x,y …` for an SVG `<polyline>`.
    pub(crate) line: String,
}

pub(crate) const CHART_WIDTH: i64 = 560;
pub(crate) const CHART_HEIGHT: i64 = 160;
/// Room under the plot for the day labels.
const LABELS: i64 = 20;

/// The chart of `points` (day, value ≥ 0; negatives are drawn as zero), scaled so the largest
/// value fills the plot.
pub(crate) fn chart(points: &[(String, i64)]) -> Chart {
    let base = CHART_HEIGHT - LABELS;
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(0);
    let n = i64::try_from(points.len()).unwrap_or(1).max(1);
    let slot = CHART_WIDTH / n;
    let width = (slot * 7 / 10).max(1);
    let bars: Vec<Bar> = points
        .iter()
        .zip(0..)
        .map(|((day, value), i)| {
            let height = if max == 0 {
                0
            } else {
                (*value).max(0) * (base - 4) / max
            };
            let x = i * slot + (slot - width) / 2;
            Bar {
                x,
                y: base - height,
                width,
                height,
                cx: x + width / 2,
                day: day.get(5..).unwrap_or(day).to_owned(),
                value: *value,
            }
        })
        .collect();
    let line = bars
        .iter()
        .map(|b| format!("{},{}", b.cx, b.y))
        .collect::<Vec<_>>()
        .join(" ");
    Chart {
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        base,
        max,
        bars,
        line,
    }
}

/// `part` of `whole` in tenths of a percent (0 when there is no whole).
pub(crate) fn permille(part: i64, whole: i64) -> i64 {
    if whole <= 0 { 0 } else { part * 1000 / whole }
}

/// Every order created since `from` (RFC 3339), paging through the list; `true` when the
/// page limit cut it short.
async fn orders_since(
    state: &WebState,
    visitor: &Visitor,
    from: &str,
) -> Result<(Vec<Value>, bool), String> {
    let mut orders = Vec::new();
    let mut after = String::new();
    for _ in 0..MAX_PAGES {
        let answer = Call::get(format!(
            "/api/v1/orders?{}",
            query_string(&[
                ("limit", "100"),
                ("created_from", from),
                ("starting_after", &after),
            ])
        ))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
        if !answer.ok() {
            return Err(answer.message());
        }
        if let Some(page) = answer.body["data"].as_array() {
            orders.extend(page.iter().cloned());
        }
        match answer.body["next_cursor"].as_str() {
            Some(next) if answer.body["has_more"] == true => after = next.to_owned(),
            _ => return Ok((orders, false)),
        }
    }
    Ok((orders, true))
}

pub(crate) async fn dashboard(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
) -> Response {
    let days = last_days(today(), DAYS);
    let first = days.first().cloned().unwrap_or_default();
    let last = days.last().cloned().unwrap_or_default();
    let mut errors = Vec::new();
    let (orders, partial) =
        match orders_since(&state, &visitor, &format!("{first}T00:00:00Z")).await {
            Ok(found) => found,
            Err(message) => {
                errors.push(format!("Orders: {message}"));
                (Vec::new(), false)
            }
        };
    let figures = per_day(&orders, &days);
    let currencies: Vec<String> = figures
        .iter()
        .flat_map(|d| d.revenue.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let revenue: Vec<Value> = currencies
        .iter()
        .map(|currency| {
            let points: Vec<(String, i64)> = figures
                .iter()
                .map(|d| (d.day.clone(), d.revenue.get(currency).copied().unwrap_or(0)))
                .collect();
            let total: i64 = points.iter().map(|(_, v)| v).sum();
            json!({ "currency": currency, "total": total, "chart": chart(&points) })
        })
        .collect();
    let order_points: Vec<(String, i64)> =
        figures.iter().map(|d| (d.day.clone(), d.orders)).collect();
    let conversion_points: Vec<(String, i64)> = figures
        .iter()
        .map(|d| (d.day.clone(), permille(d.paid, d.orders)))
        .collect();
    let total_orders: i64 = figures.iter().map(|d| d.orders).sum();
    let total_paid: i64 = figures.iter().map(|d| d.paid).sum();

    // The analytics counters of the same days, summed per event name.
    let metrics = Call::get(format!(
        "/api/v1/analytics/metrics?{}",
        query_string(&[("from", &first), ("to", &last)])
    ))
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    let mut events: BTreeMap<String, i64> = BTreeMap::new();
    if metrics.ok() {
        for row in metrics.body.as_array().into_iter().flatten() {
            if let Some(name) = row["name"].as_str() {
                *events.entry(name.to_owned()).or_default() += row["count"].as_i64().unwrap_or(0);
            }
        }
    } else {
        errors.push(format!("Analytics: {}", metrics.message()));
    }

    Page::render(
        &state,
        &visitor,
        "admin/ops/dashboard.html",
        json!({
            "me": me,
            "from": first, "to": last, "partial": partial,
            "revenue": revenue,
            "orders_chart": chart(&order_points),
            "total_orders": total_orders,
            "conversion_chart": chart(&conversion_points),
            "total_paid": total_paid,
            "conversion": permille(total_paid, total_orders),
            "days": figures,
            "events": events,
            "errors": errors,
        }),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_civil_dates() {
        assert_eq!(civil_day(0), "1970-01-01");
        assert_eq!(civil_day(19_782), "2024-02-29");
        assert_eq!(civil_day(-1), "1969-12-31");
        assert_eq!(
            last_days(19_783, 3),
            ["2024-02-28", "2024-02-29", "2024-03-01"]
        );
        assert!(last_days(0, 0).is_empty());
    }

    #[test]
    fn orders_are_counted_per_day_and_paid_revenue_net_of_refunds() {
        let days = vec!["2024-03-01".to_owned(), "2024-03-02".to_owned()];
        let orders = [
            json!({"created_at": "2024-03-01T10:00:00Z", "status": "paid", "total": 1000, "amount_refunded": 0, "currency": "EUR"}),
            json!({"created_at": "2024-03-01T11:00:00Z", "status": "pending", "total": 500, "currency": "EUR"}),
            json!({"created_at": "2024-03-02T09:00:00Z", "status": "partially_refunded", "total": 2000, "amount_refunded": 500, "currency": "EUR"}),
            json!({"created_at": "2024-02-28T09:00:00Z", "status": "paid", "total": 9, "currency": "EUR"}),
            json!({"status": "paid"}),
        ];
        let figures = per_day(&orders, &days);
        assert_eq!(figures[0].orders, 2);
        assert_eq!(figures[0].paid, 1);
        assert_eq!(figures[0].revenue["EUR"], 1000);
        assert_eq!(figures[1].orders, 1);
        assert_eq!(figures[1].revenue["EUR"], 1500);
    }

    #[test]
    fn charts_scale_the_largest_value_to_the_plot() {
        let points = vec![
            ("2024-03-01".to_owned(), 0),
            ("2024-03-02".to_owned(), 5),
            ("2024-03-03".to_owned(), 10),
            ("2024-03-04".to_owned(), -3),
        ];
        let c = chart(&points);
        assert_eq!(c.max, 10);
        assert_eq!(c.bars.len(), 4);
        assert_eq!(c.bars[0].height, 0);
        assert_eq!(c.bars[2].height, c.base - 4);
        assert_eq!(c.bars[1].height, (c.base - 4) / 2);
        assert_eq!(c.bars[3].height, 0, "negatives are drawn as zero");
        assert!(c.bars.iter().all(|b| b.y + b.height == c.base));
        assert!(c.bars.iter().all(|b| b.x >= 0 && b.x + b.width <= c.width));
        assert_eq!(c.bars[1].day, "03-02");
        assert_eq!(c.line.split(' ').count(), 4);
        let empty = chart(&[]);
        assert!(empty.bars.is_empty() && empty.line.is_empty());
        let zeros = chart(&points[..1]);
        assert_eq!(zeros.bars[0].height, 0);
    }

    #[test]
    fn conversion_is_in_tenths_of_a_percent() {
        assert_eq!(permille(1, 3), 333);
        assert_eq!(permille(3, 3), 1000);
        assert_eq!(permille(1, 0), 0);
    }
}
