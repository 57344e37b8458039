//! The request edge every service shares: page sizes and page tokens read
//! by one set of rules, and the newest-first page walk of a read model's
//! rows ([`newest_first`]). (Request ids:
//! [`baove_domain::text::request_id`].)

use std::fmt::Display;
use std::str::FromStr;

use tonic::Status;

use crate::status::invalid_argument;

/// The page size when a request gives none.
pub const DEFAULT_PAGE: usize = 100;
/// The largest page a request may ask for.
pub const MAX_PAGE: u32 = 1000;

/// Most bytes of events one response, or one message of a stream, carries:
/// well under the 4 MiB a gRPC client accepts by default (tonic's, grpc-go's,
/// grpc-java's), since one event may hold 64 KiB and a page 1000 events.
pub const MAX_MESSAGE_BYTES: usize = 3 * 1024 * 1024;

/// How many of `items`, from the first, fit in one message of at most
/// [`MAX_MESSAGE_BYTES`] encoded (each with its field tag and length): at
/// least one, so that a reader paging through always moves on.
#[must_use]
pub fn fitting<T: prost::Message>(items: &[T]) -> usize {
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        let len = item.encoded_len();
        total += len + 1 + prost::length_delimiter_len(len);
        if total > MAX_MESSAGE_BYTES && i > 0 {
            return i;
        }
    }
    items.len()
}

/// The page size `requested` in `field`: 0 means [`DEFAULT_PAGE`].
///
/// # Errors
/// INVALID_ARGUMENT naming `field` above [`MAX_PAGE`].
pub fn page_size(field: &str, requested: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n as usize),
        _ => Err(invalid_argument(field, "must be at most 1000")),
    }
}

/// The position a page token names: a pair `a:b` this service wrote with
/// [`page_token`]; `None` for an empty token (the first page).
///
/// # Errors
/// INVALID_ARGUMENT (`page.page_token`) for a token this service did not
/// write.
pub fn cursor<A: FromStr, B: FromStr>(token: &str) -> Result<Option<(A, B)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid_argument("page.page_token", "is not a token this service returned");
    let (a, b) = token.split_once(':').ok_or_else(bad)?;
    Ok(Some((
        a.parse().map_err(|_| bad())?,
        b.parse().map_err(|_| bad())?,
    )))
}

/// The page token of the next page's position (empty on the last page).
#[must_use]
pub fn page_token<A: Display, B: Display>(next: Option<(A, B)>) -> String {
    next.map(|(a, b)| format!("{a}:{b}")).unwrap_or_default()
}

/// A row's place in a newest-first list: (its time, Unix ms; its global
/// position, which orders rows of one millisecond; its id).
pub type ListKey = (i64, u64, uuid::Uuid);

/// One page of `rows`, newest first: up to `limit` rows that `matches`,
/// with times in `from_ms..to_ms` (each bound optional), strictly after
/// the cursor `after` (the (time, position) of the previous page's last
/// row); and the next page's cursor, if there are more. Read backwards from
/// the cursor in place: a page costs the rows it passes, not a sort of
/// every row.
#[must_use]
pub fn newest_first<R: Clone>(
    rows: &std::collections::BTreeMap<ListKey, R>,
    (from_ms, to_ms): (Option<i64>, Option<i64>),
    after: Option<(i64, u64)>,
    limit: usize,
    matches: impl Fn(&R) -> bool,
) -> (Vec<R>, Option<(i64, u64)>) {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    // `(ms, position, nil)` is below every key of that (ms, position).
    let nil = uuid::Uuid::nil();
    let upper = [
        after.map(|(ms, position)| (ms, position, nil)),
        to_ms.map(|to| (to, 0, nil)),
    ]
    .into_iter()
    .flatten()
    .min();
    let lower = from_ms.map(|from| (from, 0, nil));
    if let (Some(lower), Some(upper)) = (lower, upper)
        && lower >= upper
    {
        return (Vec::new(), None);
    }
    let range = (
        lower.map_or(Unbounded, Included),
        upper.map_or(Unbounded, Excluded),
    );
    let mut page = Vec::new();
    let mut last = None;
    for ((ms, position, _), row) in rows.range(range).rev().filter(|(_, row)| matches(row)) {
        if page.len() == limit {
            // One more matches: the next page starts after the last.
            return (page, last);
        }
        last = Some((*ms, *position));
        page.push(row.clone());
    }
    (page, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn given_events_larger_than_a_message_when_paged_then_each_page_fits_and_none_is_skipped() {
        use baove_proto::v1::EventEnvelope;
        use prost::Message as _;
        let event = |kib: usize| EventEnvelope {
            payload_json: "x".repeat(kib * 1024),
            ..Default::default()
        };
        // 100 events of 48 KiB (and 4 bytes of tag and length each): 63 fit
        // in 3 MiB, the rest on the next page.
        let mut rest: Vec<EventEnvelope> = (0..100).map(|_| event(48)).collect();
        let mut pages = Vec::new();
        while !rest.is_empty() {
            let n = fitting(&rest);
            assert!(n >= 1);
            let later = rest.split_off(n);
            let message = baove_proto::v1::ReadAllResponse {
                events: std::mem::replace(&mut rest, later),
                ..Default::default()
            };
            assert!(message.encoded_len() <= MAX_MESSAGE_BYTES);
            pages.push(message.events.len());
        }
        assert_eq!(pages, [63, 37]);
        // Small events: the whole page.
        assert_eq!(fitting(&vec![event(1); 1000]), 1000);
        // One event alone larger than a message still goes (at least one).
        assert_eq!(fitting(&[event(4096), event(1)]), 1);
    }

    #[test]
    fn page_tokens_read_back_what_was_written_and_nothing_else() {
        let token = page_token(Some((1_796_000_000_000_i64, 42_u64)));
        assert_eq!(
            cursor::<i64, u64>(&token).unwrap(),
            Some((1_796_000_000_000, 42))
        );
        assert_eq!(cursor::<i64, u64>("").unwrap(), None);
        assert_eq!(page_token::<i64, u64>(None), "");
        for bad in ["x", "1:x", "1/2"] {
            assert_eq!(
                cursor::<i64, u64>(bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
        assert_eq!(page_size("page.page_size", 0).unwrap(), 100);
        assert_eq!(page_size("page.page_size", 1000).unwrap(), 1000);
        assert!(page_size("page.page_size", 1001).is_err());
    }
}
