//! `mercato inventory verify`: proves that stock equals its ledger.
//!
//! For every SKU in every warehouse: on_hand is the sum of its movements' on-hand deltas,
//! reserved the sum of their reserved deltas and also the units of the active reservations
//! allocated there, and `0 ≤ reserved ≤ on_hand`. Movements without a stock row are reported
//! too. Read-only; safe on a live database.

use std::collections::BTreeMap;

use mercato_store::Db;

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Stock rows checked.
    pub levels: usize,
    /// Ledger rows summed.
    pub movements: i64,
    /// One line per disagreement; empty when the ledger holds.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether everything agreed.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

type Key = (String, String);

/// Checks the whole database.
pub async fn verify(db: &Db) -> Result<Report, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    let levels: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT sku, warehouse_id, on_hand, reserved FROM stock_levels")
            .fetch_all(&mut *conn)
            .await?;
    let sums: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, warehouse_id, CAST(SUM(on_hand_delta) AS BIGINT), \
         CAST(SUM(reserved_delta) AS BIGINT), CAST(COUNT(*) AS BIGINT) FROM movements \
         GROUP BY sku, warehouse_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let held: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT l.sku, l.warehouse_id, CAST(SUM(l.quantity) AS BIGINT) FROM reservation_lines l \
         JOIN reservations r ON r.id = l.reservation_id WHERE r.status = 'active' \
         GROUP BY l.sku, l.warehouse_id",
    )
    .fetch_all(&mut *conn)
    .await?;

    let mut ledger: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
    let mut report = Report::default();
    for (sku, wh, on_hand, reserved, count) in sums {
        report.movements += count;
        ledger.insert((sku, wh), (on_hand, reserved));
    }
    let mut holds: BTreeMap<Key, i64> = held
        .into_iter()
        .map(|(sku, wh, quantity)| ((sku, wh), quantity))
        .collect();
    report.levels = levels.len();
    for (sku, wh, on_hand, reserved) in levels {
        let key = (sku, wh);
        let (sum_on_hand, sum_reserved) = ledger.remove(&key).unwrap_or((0, 0));
        let held = holds.remove(&key).unwrap_or(0);
        let (sku, wh) = key;
        if on_hand != sum_on_hand {
            report.problems.push(format!(
                "{sku} in {wh}: on_hand {on_hand} but its movements sum to {sum_on_hand}"
            ));
        }
        if reserved != sum_reserved {
            report.problems.push(format!(
                "{sku} in {wh}: reserved {reserved} but its movements sum to {sum_reserved}"
            ));
        }
        if reserved != held {
            report.problems.push(format!(
                "{sku} in {wh}: reserved {reserved} but active reservations hold {held}"
            ));
        }
        if reserved < 0 || reserved > on_hand {
            report.problems.push(format!(
                "{sku} in {wh}: reserved {reserved} outside 0..={on_hand}"
            ));
        }
    }
    for ((sku, wh), _) in ledger {
        report
            .problems
            .push(format!("{sku} in {wh}: movements without a stock row"));
    }
    for ((sku, wh), quantity) in holds {
        report.problems.push(format!(
            "{sku} in {wh}: active reservations hold {quantity} without a stock row"
        ));
    }
    Ok(report)
}
