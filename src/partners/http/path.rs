//! One id as one URL path segment, for both partners' `/{id}` paths.
//!
//! Only what RFC 3986 does not allow in a segment is escaped: the unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) stay as they are. Escaping everything else as well (`-` as `%2D`)
//! is legal but not what strict routers and signature checks expect, and it made UUIDs
//! ungreppable in logs (`/leads/00001ead%2D0000…/`). A segment that is only dots (`.`, `..`)
//! has them escaped, so an id can never walk up the path.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but the unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `id` escaped as one path segment.
pub fn segment(id: &str) -> String {
    if !id.is_empty() && id.bytes().all(|b| b == b'.') {
        return "%2E".repeat(id.len());
    }
    utf8_percent_encode(id, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn unreserved_characters_stay_and_the_rest_is_escaped() {
        assert_eq!(
            segment("00001ead-0000-4000-8000-000000000002"),
            "00001ead-0000-4000-8000-000000000002"
        );
        assert_eq!(segment("CL_12.3~a"), "CL_12.3~a");
        assert_eq!(segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(segment("ऋण"), "%E0%A4%8B%E0%A4%A3");
    }

    #[test]
    fn an_id_of_dots_cannot_walk_up_the_path() {
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("."), "%2E");
        assert_eq!(segment("..a"), "..a");
    }
}
