//! A collector counting matching products per price bucket (minimum variant price).

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

/// Lower bounds of the price buckets in minor units; the last bucket is open-ended.
pub const BUCKET_BOUNDS: [u64; 7] = [0, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000];

/// Index of the bucket holding `amount`.
pub fn bucket_of(amount: u64) -> usize {
    BUCKET_BOUNDS
        .iter()
        .rposition(|bound| amount >= *bound)
        .unwrap_or(0)
}

/// Counts matches per bucket of one price field; products without a price are not counted.
pub struct PriceBuckets {
    field: String,
}

impl PriceBuckets {
    /// Buckets of the fast u64 field `field`.
    pub fn new(field: String) -> Self {
        Self { field }
    }
}

/// Per-segment part of [`PriceBuckets`].
pub struct SegmentPriceBuckets {
    column: Column<u64>,
    counts: Vec<u64>,
}

impl Collector for PriceBuckets {
    type Fruit = Vec<u64>;
    type Child = SegmentPriceBuckets;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentPriceBuckets> {
        Ok(SegmentPriceBuckets {
            column: reader.fast_fields().u64(&self.field)?,
            counts: vec![0; BUCKET_BOUNDS.len()],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut total = vec![0; BUCKET_BOUNDS.len()];
        for fruit in fruits {
            for (sum, count) in total.iter_mut().zip(fruit) {
                *sum += count;
            }
        }
        Ok(total)
    }
}

impl SegmentCollector for SegmentPriceBuckets {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(amount) = self.column.first(doc) {
            self.counts[bucket_of(amount)] += 1;
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_fall_in_the_bucket_of_their_lower_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(999), 0);
        assert_eq!(bucket_of(1_000), 1);
        assert_eq!(bucket_of(49_999), 5);
        assert_eq!(bucket_of(u64::MAX), 6);
    }
}
