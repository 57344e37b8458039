//! The domain crate's integration tests: stored event fixtures and the
//! generated reference data in `deploy/reference/`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod reference_data;
mod stored;
