//! Random sequences of adjust / reserve / commit / release / expire against the ledger: stock
//! is never negative, reserved never exceeds on-hand, and the ledger always sums to stock.

use std::collections::BTreeMap;

use mercato_inventory::domain::{MovementKind, ReservationStatus};
use mercato_inventory::ledger::{Adjustment, Change, Ledger, LedgerError, NewReservation, Want};
use mercato_inventory::store::{self, WarehouseRow};
use mercato_store::testing::{self, TestDb};
use mercato_store::{Db, now_micros};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

const SKUS: [&str; 3] = ["P-A", "P-B", "P-C"];

#[derive(Debug, Clone)]
enum Op {
    Adjust {
        sku: usize,
        warehouse: usize,
        delta: i64,
    },
    Count {
        sku: usize,
        warehouse: usize,
        set: i64,
    },
    Reserve {
        lines: Vec<(usize, i64)>,
    },
    Commit(usize),
    Release(usize),
    Expire(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..2usize, -6..15i64).prop_map(|(sku, warehouse, delta)| Op::Adjust {
            sku,
            warehouse,
            delta
        }),
        (0..3usize, 0..2usize, 0..12i64).prop_map(|(sku, warehouse, set)| Op::Count {
            sku,
            warehouse,
            set
        }),
        prop::collection::btree_map(0..3usize, 1..6i64, 1..=3).prop_map(|m| Op::Reserve {
            lines: m.into_iter().collect()
        }),
        (0..8usize).prop_map(Op::Commit),
        (0..8usize).prop_map(Op::Release),
        (0..8usize).prop_map(Op::Expire),
    ]
}

struct World {
    db: Db,
    ledger: Ledger,
    warehouses: [String; 2],
}

async fn world(test_db: &TestDb) -> World {
    mercato_kernel::service::migrate(&test_db.db, &mercato_inventory::MIGRATOR)
        .await
        .unwrap();
    let mut warehouses = Vec::new();
    let mut conn = test_db.db.pool().acquire().await.unwrap();
    for (priority, code) in (0..).zip(["P1", "P2"]) {
        let row = WarehouseRow::new(code, code, "DE", priority, now_micros());
        store::insert_warehouse(&mut conn, &row).await.unwrap();
        warehouses.push(row.id);
    }
    World {
        db: test_db.db.clone(),
        ledger: Ledger::new(test_db.db.clone(), 3),
        warehouses: [warehouses[0].clone(), warehouses[1].clone()],
    }
}

/// Runs one sequence under a per-case SKU prefix; checks the invariants after every step.
async fn run(w: &World, case: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sku = |i: usize| format!("{case}-{}", SKUS[i]);
    let mut reservations: Vec<String> = Vec::new();
    for op in ops {
        let outcome = match &op {
            Op::Adjust {
                sku: s,
                warehouse,
                delta,
            } => {
                let kind = if *delta > 0 {
                    MovementKind::Receipt
                } else {
                    MovementKind::Adjustment
                };
                let change = if *delta == 0 {
                    Change::Delta(1)
                } else {
                    Change::Delta(*delta)
                };
                w.ledger
                    .adjust(
                        &Adjustment {
                            sku: sku(*s),
                            warehouse_id: w.warehouses[*warehouse].clone(),
                            change,
                            kind,
                            reference: None,
                            note: None,
                        },
                        "prop",
                    )
                    .await
                    .map(|_| ())
            }
            Op::Count {
                sku: s,
                warehouse,
                set,
            } => w
                .ledger
                .adjust(
                    &Adjustment {
                        sku: sku(*s),
                        warehouse_id: w.warehouses[*warehouse].clone(),
                        change: Change::Set(*set),
                        kind: MovementKind::Adjustment,
                        reference: None,
                        note: None,
                    },
                    "prop",
                )
                .await
                .map(|_| ()),
            Op::Reserve { lines } => {
                let new = NewReservation {
                    reference: format!("case-{case}"),
                    lines: lines
                        .iter()
                        .map(|(s, q)| Want {
                            sku: sku(*s),
                            quantity: *q,
                        })
                        .collect(),
                    ttl_seconds: 60,
                };
                w.ledger
                    .reserve(&new, "prop")
                    .await
                    .map(|r| reservations.push(r.row.id))
            }
            Op::Commit(i) | Op::Release(i) | Op::Expire(i) if reservations.is_empty() => {
                let _ = i;
                Ok(())
            }
            Op::Commit(i) => w
                .ledger
                .commit(&reservations[i % reservations.len()], "prop")
                .await
                .map(|_| ()),
            Op::Release(i) => w
                .ledger
                .release(&reservations[i % reservations.len()], "prop")
                .await
                .map(|_| ()),
            Op::Expire(i) => {
                let id = &reservations[i % reservations.len()];
                sqlx::query("UPDATE reservations SET expires_at = 0 WHERE id = $1")
                    .bind(id)
                    .execute(w.db.pool())
                    .await
                    .unwrap();
                w.ledger.expire_due(now_micros()).await.map(|_| ())
            }
        };
        match outcome {
            Ok(())
            | Err(
                LedgerError::Insufficient(_)
                | LedgerError::UnknownSku(_)
                | LedgerError::BelowReserved { .. }
                | LedgerError::ReservationClosed(
                    ReservationStatus::Committed
                    | ReservationStatus::Released
                    | ReservationStatus::Expired,
                ),
            ) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{op:?}: {e}"))),
        }
        let levels: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT sku, on_hand, reserved FROM stock_levels")
                .fetch_all(w.db.pool())
                .await
                .unwrap();
        let mut per_sku: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (s, on_hand, reserved) in levels {
            prop_assert!(
                on_hand >= 0 && reserved >= 0 && reserved <= on_hand,
                "{op:?}: {s} {on_hand}/{reserved}"
            );
            let e = per_sku.entry(s).or_default();
            e.0 += on_hand;
            e.1 += reserved;
        }
        let report = mercato_inventory::verify::verify(&w.db).await.unwrap();
        prop_assert!(report.is_ok(), "{op:?}: {:?}", report.problems);
        for (s, (on_hand, reserved)) in per_sku {
            let totals = w.ledger.totals(&s).await.unwrap().unwrap();
            prop_assert_eq!((totals.on_hand, totals.reserved), (on_hand, reserved));
            prop_assert!(totals.available >= 0);
        }
    }
    Ok(())
}

#[test]
fn random_sequences_keep_stock_non_negative_and_the_ledger_summed() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let databases = runtime.block_on(testing::databases(&mercato_inventory::MIGRATOR));
    for test_db in &databases {
        let w = runtime.block_on(world(test_db));
        let cases = if test_db.label() == "sqlite" { 64 } else { 32 };
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let case = std::sync::atomic::AtomicU64::new(0);
        let result = runner.run(&prop::collection::vec(op(), 1..30), |ops| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(run(&w, case, ops))
        });
        if let Err(e) = result {
            panic!("{}: {e}", test_db.label());
        }
    }
}
