//! The stable machine codes of the problems the API answers with (the `code` of a
//! problem+json body). Clients branch on them, so each is written exactly as API.md names it
//! and never changes; what went wrong field by field is told apart by the `errors`' own codes.

string_enum! {
    /// Stable machine code of a problem: what kind of refusal or failure it is.
    pub enum ErrorCode {
        /// 422: the request breaks the rules; the fields are in `errors`.
        ValidationFailed = "validation_failed",
        /// 400: the body is not JSON.
        MalformedJson = "malformed_json",
        /// 404: nothing has this id (or the key may not see it), or no route has this path.
        NotFound = "not_found",
        /// 405: the path takes other methods.
        MethodNotAllowed = "method_not_allowed",
        /// 401: no key, or a key that is unknown or revoked.
        Unauthorized = "unauthorized",
        /// 403: the key lacks the scope, or acts outside its channel.
        Forbidden = "forbidden",
        /// 409: the state allows no such change.
        Conflict = "conflict",
        /// 409: not enough stock for some lines (they are in `errors`); nothing was held.
        InsufficientStock = "insufficient_stock",
        /// 412: `If-Match` names an older version.
        VersionMismatch = "version_mismatch",
        /// 422: this `Idempotency-Key` was used with another request body.
        IdempotencyKeyReused = "idempotency_key_reused",
        /// 422: a free-form reply outside the channel's reply window.
        WindowClosed = "window_closed",
        /// 401: a provider's webhook whose signature or secret does not prove its sender.
        InvalidSignature = "invalid_signature",
        /// 413: the body is over the limit.
        PayloadTooLarge = "payload_too_large",
        /// 429: too many at once; try again later.
        RateLimited = "rate_limited",
        /// 503: the server cannot save changes right now.
        Unavailable = "unavailable",
        /// 500: the server failed (always a bug).
        Internal = "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_own_string() {
        crate::string_enum::assert_spelled_once(ErrorCode::ALL, ErrorCode::as_str, ErrorCode::parse);
        assert_eq!(ErrorCode::ALL.len(), 16);
        assert_eq!(ErrorCode::IdempotencyKeyReused.as_str(), "idempotency_key_reused");
    }
}
