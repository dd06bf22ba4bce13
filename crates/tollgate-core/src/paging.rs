//! Paging parameters and a page of results with the total number of matches.

/// Largest page any list returns.
pub const MAX_LIMIT: u32 = 1000;

/// `limit` (None = every row) and `offset` of a list request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    pub limit: Option<u32>,
    pub offset: u32,
}

/// One page of rows and how many rows match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}
