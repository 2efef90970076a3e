//! Inventory rules that need no database: what a movement is, how a line is allocated to
//! warehouses, and the limits of a request.

use serde::Serialize;

/// Most lines one reservation may hold.
pub const MAX_LINES: usize = 1000;
/// Most units one line (or one adjustment) may move, so sums never come near overflow.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Longest reservation a caller may ask for: a week.
pub const MAX_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// Most SKUs one batch read or stream may name.
pub const MAX_SKUS_PER_QUERY: usize = 200;

/// Why stock moved; stored in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods arrived.
    Receipt,
    /// A count or correction by staff.
    Adjustment,
    /// Units held for a reservation (on_hand unchanged).
    Reservation,
    /// Held units returned to available (release or expiry).
    Release,
    /// Held units left the warehouse.
    Commit,
    /// A customer sent goods back.
    Return,
}

impl MovementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Adjustment => "adjustment",
            Self::Reservation => "reservation",
            Self::Release => "release",
            Self::Commit => "commit",
            Self::Return => "return",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "receipt" => Self::Receipt,
            "adjustment" => Self::Adjustment,
            "reservation" => Self::Reservation,
            "release" => Self::Release,
            "commit" => Self::Commit,
            "return" => Self::Return,
            _ => return None,
        })
    }

    /// Whether staff may record this kind by hand; the others follow reservations.
    pub fn is_manual(self) -> bool {
        matches!(self, Self::Receipt | Self::Adjustment | Self::Return)
    }
}

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Units are held.
    Active,
    /// Units left the warehouse.
    Committed,
    /// Units returned on request.
    Released,
    /// Units returned because the reservation outlived its TTL.
    Expired,
}

impl ReservationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "active" => Self::Active,
            "committed" => Self::Committed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// Units of one SKU a warehouse can give now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `wh_…`.
    pub warehouse_id: String,
    /// on_hand − reserved there.
    pub available: i64,
}

/// Splits `quantity` over `candidates`, which come in allocation order (priority, then code).
///
/// The first warehouse that can ship the whole line takes it, so an order leaves from as few
/// places as possible; when none can, the line is split in priority order. `Err` carries the
/// units that are available in all.
pub fn allocate(quantity: i64, candidates: &[Candidate]) -> Result<Vec<(String, i64)>, i64> {
    if let Some(whole) = candidates.iter().find(|c| c.available >= quantity) {
        return Ok(vec![(whole.warehouse_id.clone(), quantity)]);
    }
    let total: i64 = candidates.iter().map(|c| c.available.max(0)).sum();
    if total < quantity {
        return Err(total);
    }
    let mut left = quantity;
    let mut plan = Vec::new();
    for c in candidates.iter().filter(|c| c.available > 0) {
        let take = c.available.min(left);
        plan.push((c.warehouse_id.clone(), take));
        left -= take;
        if left == 0 {
            break;
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, available: i64) -> Candidate {
        Candidate {
            warehouse_id: id.into(),
            available,
        }
    }

    #[test]
    fn the_first_warehouse_that_ships_the_whole_line_takes_it() {
        let plan = allocate(5, &[c("a", 3), c("b", 6), c("c", 10)]).unwrap();
        assert_eq!(plan, vec![("b".to_owned(), 5)]);
    }

    #[test]
    fn a_line_no_warehouse_can_ship_alone_is_split_by_priority() {
        let plan = allocate(8, &[c("a", 3), c("b", 0), c("c", 4), c("d", 4)]).unwrap();
        assert_eq!(
            plan,
            vec![
                ("a".to_owned(), 3),
                ("c".to_owned(), 4),
                ("d".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_short_line_reports_what_is_available() {
        assert_eq!(allocate(10, &[c("a", 3), c("b", 4)]), Err(7));
        assert_eq!(allocate(1, &[]), Err(0));
    }

    #[test]
    fn names_round_trip() {
        for kind in [
            MovementKind::Receipt,
            MovementKind::Adjustment,
            MovementKind::Reservation,
            MovementKind::Release,
            MovementKind::Commit,
            MovementKind::Return,
        ] {
            assert_eq!(MovementKind::parse(kind.as_str()), Some(kind));
        }
        for status in [
            ReservationStatus::Active,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Expired,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
    }
}
