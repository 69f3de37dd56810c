//! Webhooks: the merchant's systems receive the event log over HTTP, each event signed, and
//! retried for a day until their server answers 2xx.
//!
//! Here are the rules only: which events an endpoint wants, how a delivery is signed and
//! checked, and when a failed one is tried again; what a claimed delivery carries out
//! ([`Outgoing`]) and what came of it ([`Outcome`]). The store keeps endpoints and
//! deliveries; the providers crate sends them.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Timestamp;
use crate::destinations::Destinations;
use crate::events::{Event, EventType};
use crate::validation::{Check, Invalid};

/// The header that carries the signature of a delivery.
pub const SIGNATURE_HEADER: &str = "Omnihub-Signature";

/// How far a delivery's signed time may be from the receiver's clock, by default: a captured
/// delivery replayed later than this is refused.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Pauses between attempts: after the first failure 1 s, then 5 s, 30 s, 2 min, 10 min, 1 h,
/// and hourly after that.
const RETRY_DELAYS_SECONDS: [i64; 6] = [1, 5, 30, 120, 600, 3600];

/// A delivery is given up (`failed`) when its next attempt would fall later than this after
/// its first one.
pub const GIVE_UP_AFTER_SECONDS: i64 = 24 * 60 * 60;

/// Each pause is stretched or shrunk by up to this share, so that the retries of many
/// deliveries that failed together do not all hit the receiver in the same second.
const JITTER: f64 = 0.1;

const MAX_URL_CHARS: usize = 2000;
const MAX_PATTERNS: usize = 100;
const MAX_PATTERN_CHARS: usize = 100;
const MIN_SECRET_CHARS: usize = 16;
const MAX_SECRET_CHARS: usize = 200;

/// Whether a well-formed pattern matches some event type.
fn matches_a_type(pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => EventType::ALL.iter().any(|kind| kind.as_str().starts_with(prefix)),
        None => EventType::parse(pattern).is_some(),
    }
}

/// The patterns without repeats, in their first order.
fn unique(patterns: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    patterns.retain(|pattern| seen.insert(pattern.clone()));
}

// ───────────────────────────── endpoints ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Receives every matching event.
    #[default]
    Active,
    /// Receives nothing; events keep coming in the log and are delivered once resumed.
    Paused,
}

impl EndpointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Active => "active",
            EndpointStatus::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [EndpointStatus::Active, EndpointStatus::Paused]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// What may be changed on an endpoint: where it is, what it wants, whether it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointDraft {
    /// Where deliveries are POSTed: an `http://` or `https://` URL at a public address
    /// (unless the server allows private destinations).
    pub url: String,
    /// Event types to receive: `*` for all, an exact type (`order.placed`) or every type of a
    /// resource (`order.*`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<EventPattern>))]
    pub events: Vec<String>,
    #[serde(default)]
    pub status: EndpointStatus,
}

impl EndpointDraft {
    /// Drops repeated event types.
    pub fn tidy(&mut self) {
        unique(&mut self.events);
    }

    /// Checks the draft; its URL must be a destination `destinations` allows.
    pub fn validate(&self, destinations: Destinations) -> Result<(), Invalid> {
        let mut check = Check::new();
        check_url(&mut check, &self.url, destinations);
        check_patterns(&mut check, &self.events);
        check.done()
    }
}

/// What a client sends to register an endpoint. Without a `secret`, one is made and shown in
/// the answer, that once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<EventPattern>))]
    pub events: Vec<String>,
    /// The key deliveries are signed with (16–200 characters); made when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub status: EndpointStatus,
}

impl NewEndpoint {
    /// Drops repeated event types.
    pub fn tidy(&mut self) {
        unique(&mut self.events);
    }

    /// Checks the endpoint; its URL must be a destination `destinations` allows.
    pub fn validate(&self, destinations: Destinations) -> Result<(), Invalid> {
        let mut check = Check::new();
        check_url(&mut check, &self.url, destinations);
        check_patterns(&mut check, &self.events);
        if let Some(secret) = &self.secret {
            check_secret(&mut check, secret);
        }
        check.done()
    }

    pub fn draft(&self) -> EndpointDraft {
        EndpointDraft {
            url: self.url.clone(),
            events: self.events.clone(),
            status: self.status,
        }
    }
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    pub id: String,
    #[serde(flatten)]
    pub draft: EndpointDraft,
    /// The signing key: only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The `seq` of the last event looked at for this endpoint: every matching event up to
    /// here has a delivery.
    pub last_event_seq: i64,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn check_url(check: &mut Check, url: &str, destinations: Destinations) {
    if url.trim().is_empty() {
        return check.fail("url", "required", "must not be blank");
    }
    if url.chars().count() > MAX_URL_CHARS {
        return check.fail("url", "too_long", format!("must be at most {MAX_URL_CHARS} characters"));
    }
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            destinations.check(check, "url", &parsed);
        }
        _ => check.fail("url", "invalid", "must be an absolute http:// or https:// URL"),
    }
}

fn check_patterns(check: &mut Check, patterns: &[String]) {
    if patterns.is_empty() {
        return check.fail("events", "required", "name at least one event type, or * for all");
    }
    if patterns.len() > MAX_PATTERNS {
        return check.fail("events", "too_long", format!("at most {MAX_PATTERNS} event types"));
    }
    for (i, pattern) in patterns.iter().enumerate() {
        if !is_pattern(pattern) {
            check.fail(
                format!("events[{i}]"),
                "invalid",
                "must be *, an event type such as order.placed, or a resource's types such as order.*",
            );
        } else if !matches_a_type(pattern) {
            check.fail(
                format!("events[{i}]"),
                "unknown",
                format!("{pattern} matches no event type"),
            );
        }
    }
}

/// `*`, or dot-separated words of `a-z`, `0-9` and `_`, of which the last may be `*`.
fn is_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let words = pattern.strip_suffix(".*").unwrap_or(pattern);
    pattern.len() <= MAX_PATTERN_CHARS
        && words.split('.').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// One entry of an endpoint's `events`, as the OpenAPI document describes it: an event type,
/// or `*` / `resource.*`.
#[cfg(feature = "openapi")]
pub struct EventPattern;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for EventPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Type};
        let wildcard = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*\.\*)$"))
            .max_length(Some(MAX_PATTERN_CHARS))
            .description(Some("`*` for every type, or `resource.*` for every type of a resource"));
        OneOfBuilder::new()
            .item(Ref::from_schema_name("EventType"))
            .item(wildcard)
            .description(Some("An event type, or a pattern of event types"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for EventPattern {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((EventType::name().into(), EventType::schema()));
    }
}

fn check_secret(check: &mut Check, secret: &str) {
    let chars = secret.chars().count();
    if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
        check.fail(
            "secret",
            "out_of_range",
            format!("must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters"),
        );
    } else if secret.chars().any(char::is_whitespace) {
        check.fail("secret", "invalid", "must not contain spaces");
    }
}

/// Whether an endpoint asking for `patterns` wants events of type `kind`.
pub fn wants(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    })
}

// ───────────────────────────── deliveries ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet answered with 2xx; tried again at `next_attempt_at`.
    Pending,
    Succeeded,
    /// Given up on after a day of failed attempts.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One event on its way to one endpoint, with every attempt made so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_seq: i64,
    /// The event's type as it was written, as in the log.
    #[cfg_attr(feature = "openapi", schema(value_type = EventType))]
    pub event_type: String,
    /// How many times the endpoint had been replayed when this delivery was made: 0 for the
    /// first delivery of an event, 1 or more for one made again by a replay.
    pub replay: i64,
    pub status: DeliveryStatus,
    pub attempt_count: i64,
    /// When it is tried (again); null once it succeeded or failed.
    pub next_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    /// How long the last attempt took, in milliseconds.
    pub response_time_ms: Option<i64>,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One try at sending a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub number: i64,
    pub at: Timestamp,
    /// The receiver's HTTP status; null when there was no answer (timeout, refused).
    pub status_code: Option<i64>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub response_time_ms: i64,
}

/// A delivery claimed for sending, with everything the request needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub delivery_id: String,
    pub url: String,
    pub secret: String,
    pub event: Event,
    /// The number this attempt will have: 1 for the first.
    pub attempt: i64,
    /// When the first attempt was made; `None` before it.
    pub first_attempt_at: Option<Timestamp>,
}

/// What came of one attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub at: Timestamp,
    /// The receiver's HTTP status; `None` when it did not answer.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_time_ms: i64,
}

/// Whether the receiver's answer means "got it".
pub fn accepted(status_code: u16) -> bool {
    (200..300).contains(&status_code)
}

/// When to try a delivery again after `attempts` failed attempts, the first of which was at
/// `first_attempt_at`; `None` once it is time to give up. `jitter` (from -1 to 1, random in
/// the caller) shifts the pause by up to ±10 %.
pub fn next_attempt_at(first_attempt_at: Timestamp, attempts: i64, now: Timestamp, jitter: f64) -> Option<Timestamp> {
    let step = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    let pause_ms = RETRY_DELAYS_SECONDS[step.min(RETRY_DELAYS_SECONDS.len() - 1)] * 1000;
    let shift = (pause_ms as f64 * JITTER * jitter.clamp(-1.0, 1.0)) as i64;
    let next = Timestamp(now.millis().saturating_add(pause_ms + shift));
    (next <= first_attempt_at.plus_seconds(GIVE_UP_AFTER_SECONDS)).then_some(next)
}

// ───────────────────────────── signatures ─────────────────────────────

/// The `Omnihub-Signature` of `body` sent at `unix` seconds:
/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn sign(secret: &str, unix: i64, body: &[u8]) -> String {
    let mac = mac(secret, unix, body).finalize().into_bytes();
    format!("t={unix},v1={}", hex::encode(mac))
}

fn mac(secret: &str, unix: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this never falls back.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| Hmac::new(&Default::default()));
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not t=<unix>,v1=<hex>")]
    Malformed,
    #[error("the signed time is too far from now")]
    OutsideTolerance,
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// Checks a delivery as its receiver should: the header's time is within `tolerance_seconds`
/// of `now_unix`, and one of its `v1` signatures is the HMAC of `"<t>.<body>"` under the
/// endpoint's secret (compared in constant time).
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut signatures = Vec::new();
    for part in header.split(',') {
        if let Some(("v1", value)) = part.trim().split_once('=') {
            signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?);
        }
    }
    let signed_at = signed_at(header).ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if signed_at.abs_diff(now_unix) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance);
    }
    let matches = |signature: &Vec<u8>| mac(secret, signed_at, body).verify_slice(signature).is_ok();
    if signatures.iter().any(matches) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The time a signature header names (its last `t=`), as [`verify`] reads it.
fn signed_at(header: &str) -> Option<i64> {
    header
        .rsplit(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(name, _)| *name == "t")
        .and_then(|(_, value)| value.parse().ok())
}

/// A name for a signed call that brings no id of its own: the signed time and a hash of the
/// body, what the signature covers. The same call sent again — which the signature alone lets
/// through for as long as its time is within the tolerance — gets the same name, however its
/// header was rewritten (another `v1` added, the order changed).
pub fn signed_call_id(header: &str, body: &[u8]) -> Option<String> {
    let signed_at = signed_at(header)?;
    Some(format!("signed:{signed_at}:{}", hex::encode(Sha256::digest(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_0123456789";

    #[test]
    fn a_signed_call_sent_again_has_the_same_name_however_its_header_is_dressed() {
        let body = br#"{"text":"hi"}"#;
        let header = sign(SECRET, 1_790_000_000, body);
        let name = signed_call_id(&header, body).unwrap();
        assert!(name.starts_with("signed:1790000000:"));
        let v1 = header.split_once(",v1=").unwrap().1;
        for dressed in [
            format!("t=+1790000000,v1=00,v1={v1}"),
            format!("t=1,t=1790000000, v1={v1}"),
            format!("v1={v1},t=1790000000"),
        ] {
            assert_eq!(verify(&dressed, body, SECRET, 1_790_000_000, 300), Ok(()), "{dressed}");
            assert_eq!(
                signed_call_id(&dressed, body).as_deref(),
                Some(name.as_str()),
                "{dressed}"
            );
        }
        assert_ne!(
            signed_call_id(&sign(SECRET, 1_790_000_001, body), body),
            Some(name.clone())
        );
        assert_ne!(signed_call_id(&header, b"{}"), Some(name));
        assert_eq!(signed_call_id("v1=00", body), None);
    }

    #[test]
    fn a_signed_body_verifies_and_a_changed_one_does_not() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(SECRET, 1_790_000_000, body);
        assert!(header.starts_with("t=1790000000,v1="));
        assert_eq!(verify(&header, body, SECRET, 1_790_000_010, 300), Ok(()));
        assert_eq!(
            verify(&header, br#"{"id":"evt_2"}"#, SECRET, 1_790_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, body, "whsec_other_secret_99", 1_790_000_010, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_or_future_signature_is_refused() {
        let body = b"{}";
        let header = sign(SECRET, 1_790_000_000, body);
        assert_eq!(
            verify(&header, body, SECRET, 1_790_000_301, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&header, body, SECRET, 1_789_999_699, 300),
            Err(SignatureError::OutsideTolerance)
        );
    }

    #[test]
    fn a_known_vector_matches() {
        // Worked out independently: Python's hmac.new(b"key", b'1790000000.{"id":"evt_1"}', sha256).
        assert_eq!(
            sign("key", 1_790_000_000, br#"{"id":"evt_1"}"#),
            "t=1790000000,v1=70fdefefc189956a764ee73b01ab8dbf4373541799428e5b950f62d378d057bf"
        );
    }

    #[test]
    fn broken_headers_are_malformed_and_any_v1_may_match() {
        for header in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert_eq!(
                verify(header, b"{}", SECRET, 1, 300),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        let good = sign(SECRET, 5, b"{}");
        let rotated = format!("t=5,v1={},{}", "00".repeat(32), good.split_once(',').unwrap().1);
        assert_eq!(verify(&rotated, b"{}", SECRET, 5, 300), Ok(()));
    }

    #[test]
    fn retries_back_off_then_go_hourly_then_give_up_after_a_day() {
        let first = Timestamp(0);
        let pauses: Vec<i64> = (1..=8)
            .map(|n| next_attempt_at(first, n, Timestamp(0), 0.0).unwrap().millis() / 1000)
            .collect();
        assert_eq!(pauses, [1, 5, 30, 120, 600, 3600, 3600, 3600]);
        let late = first.plus_seconds(GIVE_UP_AFTER_SECONDS - 3600);
        assert_eq!(
            next_attempt_at(first, 20, late, 0.0),
            Some(first.plus_seconds(GIVE_UP_AFTER_SECONDS))
        );
        assert_eq!(next_attempt_at(first, 21, late.plus_seconds(1), 0.0), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let at = |jitter| next_attempt_at(Timestamp(0), 3, Timestamp(0), jitter).unwrap().millis();
        assert_eq!(at(1.0), 33_000);
        assert_eq!(at(-1.0), 27_000);
        assert_eq!(at(7.0), 33_000);
    }

    #[test]
    fn a_day_of_retries_is_about_thirty_attempts() {
        let first = Timestamp(0);
        let (mut now, mut attempts) = (first, 1);
        while let Some(next) = next_attempt_at(first, attempts, now, 0.0) {
            now = next;
            attempts += 1;
        }
        assert_eq!(attempts, 29);
        assert!(now <= first.plus_seconds(GIVE_UP_AFTER_SECONDS));
    }

    #[test]
    fn patterns_match_all_exact_and_by_resource() {
        let all = vec!["*".to_owned()];
        let orders = vec!["order.*".to_owned(), "product.created".to_owned()];
        assert!(wants(&all, "customer.merged"));
        assert!(wants(&orders, "order.placed"));
        assert!(wants(&orders, "product.created"));
        assert!(!wants(&orders, "product.updated"));
        assert!(!wants(&orders, "orders.placed"));
    }

    #[test]
    fn endpoints_need_a_web_url_and_sensible_patterns() {
        let good = NewEndpoint {
            url: "https://shop.example/hooks".into(),
            events: vec!["order.*".into(), "*".into(), "inventory.level_changed".into()],
            secret: None,
            status: EndpointStatus::Active,
        };
        assert_eq!(good.validate(Destinations::PublicOnly), Ok(()));
        let bad = NewEndpoint {
            url: "ftp://shop.example".into(),
            events: vec!["Order.Placed".into(), "order.".into(), "*.placed".into()],
            secret: Some("short".into()),
            status: EndpointStatus::Active,
        };
        let fields: Vec<String> = bad
            .validate(Destinations::PublicOnly)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["url", "events[0]", "events[1]", "events[2]", "secret"]);
        let none = EndpointDraft {
            url: "http://127.0.0.1:9/x".into(),
            events: vec![],
            status: EndpointStatus::Paused,
        };
        let refused = none.validate(Destinations::PublicOnly).unwrap_err().0;
        let refused: Vec<(&str, &str)> = refused.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(refused, [("url", "private_destination"), ("events", "required")]);
        assert_eq!(
            none.validate(Destinations::PrivateAllowed).unwrap_err().0[0].field,
            "events"
        );
    }
}
