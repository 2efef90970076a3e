//! Cursor pagination: `?limit=&starting_after=` in, `{data, has_more, next_cursor}` out.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 100;

/// Query parameters of every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Id of the last item of the previous page.
    pub starting_after: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page.
    pub limit: u32,
    /// Return items strictly after this id.
    pub after: Option<String>,
}

impl PageParams {
    /// Checks bounds; an out-of-range limit is an error, not silently clamped.
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = self.starting_after.clone().filter(|s| !s.is_empty());
        if after.as_ref().is_some_and(|a| a.len() > 128) {
            return Err(ApiError::invalid_field(
                "starting_after",
                "too_long",
                "cursor is too long",
            ));
        }
        Ok(PageRequest { limit, after })
    }
}

impl PageRequest {
    /// How many rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items, in order.
    pub data: Vec<T>,
    /// Whether more items follow.
    pub has_more: bool,
    /// Pass as `starting_after` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows; `cursor` gives an item's id.
    pub fn from_rows(
        mut rows: Vec<T>,
        request: &PageRequest,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let limit = request.limit as usize;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(cursor)
        } else {
            None
        };
        Self {
            data: rows,
            has_more,
            next_cursor,
        }
    }

    /// The same page with each item converted, e.g. from a stored row to its wire type.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_out_of_range_is_rejected() {
        assert!(
            PageParams {
                limit: Some(0),
                starting_after: None
            }
            .parse()
            .is_err()
        );
        assert!(
            PageParams {
                limit: Some(101),
                starting_after: None
            }
            .parse()
            .is_err()
        );
        assert_eq!(PageParams::default().parse().unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn extra_row_means_more() {
        let request = PageParams {
            limit: Some(2),
            starting_after: None,
        }
        .parse()
        .unwrap();
        let page = Page::from_rows(vec!["a", "b", "c"], &request, |s| s.to_string());
        assert_eq!(page.data, ["a", "b"]);
        assert!(page.has_more);
        assert_eq!(page.next_cursor.as_deref(), Some("b"));
        let last = Page::from_rows(vec!["c"], &request, |s| s.to_string());
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
    }
}
