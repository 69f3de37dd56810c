//! Inventory rules: stock levels, adjustments and transfers, what each channel may sell,
//! where a reservation takes its stock from, reservation expiry and reorder suggestions.
//!
//! Everything here is arithmetic on values the store has read; the store makes the writes
//! atomic (a reservation is one conditional `UPDATE`, never a read-then-write).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::catalog::{Channel, Location, StockBuffer, check_sku};
use crate::validation::{Check, FieldError, Invalid, Lines};

/// The largest quantity one adjustment, transfer or reservation line may move. Far above any
/// real shelf, and low enough that sums over many locations cannot overflow.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// How long a reservation holds its stock when the client does not say.
pub const DEFAULT_RESERVATION_TTL_SECONDS: i64 = 900;

/// A reservation may hold stock for at most 30 days.
pub const MAX_RESERVATION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

/// A reservation may hold at most this many lines.
pub const MAX_RESERVATION_LINES: usize = 100;

const MAX_ID_CHARS: usize = 64;
const MAX_REFERENCE_CHARS: usize = 200;

// ───────────────────────────── levels ─────────────────────────────

/// The stock of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "LevelView")]
pub struct Level {
    pub sku: String,
    pub location_id: String,
    /// Units physically at the location; equals the sum of the level's movements.
    pub on_hand: i64,
    /// Units promised to reservations and not yet taken away.
    pub reserved: i64,
    pub version: i64,
}

impl Level {
    /// What may still be promised from here. An over-reserved level (a backorder) shows 0.
    pub fn available(&self) -> i64 {
        self.on_hand.saturating_sub(self.reserved).max(0)
    }
}

/// The level as clients see it: with `available` worked out, so no client does the sum.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LevelView {
    sku: String,
    location_id: String,
    on_hand: i64,
    reserved: i64,
    /// `on_hand - reserved`, never below 0.
    available: i64,
    version: i64,
}

impl From<Level> for LevelView {
    fn from(level: Level) -> Self {
        LevelView {
            available: level.available(),
            sku: level.sku,
            location_id: level.location_id,
            on_hand: level.on_hand,
            reserved: level.reserved,
            version: level.version,
        }
    }
}

// The schema must show `available` too, so it is the view's schema under the level's name.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Level {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <LevelView as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Level {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Level")
    }
}

// ───────────────────────────── movements ─────────────────────────────

/// Why `on_hand` changed. Reservations never move stock; only these do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MovementReason {
    Receipt,
    Sale,
    Count,
    Damage,
    Return,
    Correction,
    TransferOut,
    TransferIn,
}

impl MovementReason {
    pub const ALL: [MovementReason; 8] = [
        MovementReason::Receipt,
        MovementReason::Sale,
        MovementReason::Count,
        MovementReason::Damage,
        MovementReason::Return,
        MovementReason::Correction,
        MovementReason::TransferOut,
        MovementReason::TransferIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MovementReason::Receipt => "receipt",
            MovementReason::Sale => "sale",
            MovementReason::Count => "count",
            MovementReason::Damage => "damage",
            MovementReason::Return => "return",
            MovementReason::Correction => "correction",
            MovementReason::TransferOut => "transfer_out",
            MovementReason::TransferIn => "transfer_in",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        MovementReason::ALL.into_iter().find(|reason| reason.as_str() == text)
    }

    /// Whether a client may give this reason in an adjustment. Transfer movements come in
    /// pairs that only a transfer writes, so the ledger of both locations always agrees.
    pub fn is_manual(self) -> bool {
        !matches!(self, MovementReason::TransferOut | MovementReason::TransferIn)
    }
}

// ───────────────────────────── adjustments and transfers ─────────────────────────────

/// What a client sends to change the stock of one SKU at one location: either a `delta`
/// (received 12, damaged 1) or a counted `set_on_hand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdjustmentDraft {
    pub sku: String,
    pub location_id: String,
    /// Units added (positive) or removed (negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i64>,
    /// The counted quantity; the movement is the difference to what was on hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_on_hand: Option<i64>,
    pub reason: MovementReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl AdjustmentDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check_sku("sku", &self.sku, &mut check);
        check.text("location_id", &self.location_id, MAX_ID_CHARS);
        self.check_change(&mut check);
        if !self.reason.is_manual() {
            check.fail(
                "reason",
                "invalid",
                "transfer_out and transfer_in are written by transfers; send a transfer instead",
            );
        }
        check_reference(&mut check, self.reference.as_deref());
        check.done()
    }

    fn check_change(&self, check: &mut Check) {
        match (self.delta, self.set_on_hand) {
            (None, None) => check.fail("delta", "required", "give either delta or set_on_hand"),
            (Some(_), Some(_)) => check.fail("set_on_hand", "invalid", "give either delta or set_on_hand, not both"),
            (Some(0), None) => check.fail("delta", "out_of_range", "must not be 0"),
            (Some(delta), None) if delta.unsigned_abs() > MAX_QUANTITY.unsigned_abs() => check.fail(
                "delta",
                "out_of_range",
                format!("must be between -{MAX_QUANTITY} and {MAX_QUANTITY}"),
            ),
            (None, Some(target)) if !(0..=MAX_QUANTITY).contains(&target) => check.fail(
                "set_on_hand",
                "out_of_range",
                format!("must be between 0 and {MAX_QUANTITY}"),
            ),
            _ => {}
        }
    }

    /// The movement to write against `level` (call after [`validate`](Self::validate)).
    /// Raising stock is always allowed, even on an over-reserved level; lowering it may take
    /// neither `on_hand` below 0 nor units already promised to reservations.
    pub fn resolve_delta(&self, level: &Level) -> Result<i64, Invalid> {
        let (field, delta) = match (self.delta, self.set_on_hand) {
            (Some(delta), _) => ("delta", Some(delta)),
            (None, Some(target)) => ("set_on_hand", target.checked_sub(level.on_hand)),
            (None, None) => {
                return Err(Invalid::one("delta", "required", "give either delta or set_on_hand"));
            }
        };
        let after = delta.and_then(|delta| level.on_hand.checked_add(delta));
        match (delta, after) {
            (Some(delta), Some(after)) if delta < 0 => check_lowering(field, level, after).map(|()| delta),
            (Some(delta), Some(_)) => Ok(delta),
            _ => Err(Invalid::one(field, "out_of_range", "the change is too large")),
        }
    }
}

fn check_lowering(field: &str, level: &Level, after: i64) -> Result<(), Invalid> {
    if level.reserved > 0 && after < level.reserved {
        let reserved = level.reserved;
        return Err(Invalid::one(
            field,
            "below_reserved",
            format!("{reserved} units are reserved here, so on_hand may not go below {reserved} (it would be {after})"),
        ));
    }
    if after < 0 {
        return Err(Invalid::one(
            field,
            "out_of_range",
            format!("only {} units are on hand; on_hand may not go below 0", level.on_hand),
        ));
    }
    Ok(())
}

/// What a client sends to move stock from one location to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferDraft {
    pub sku: String,
    pub from_location_id: String,
    pub to_location_id: String,
    pub quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl TransferDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check_sku("sku", &self.sku, &mut check);
        check.text("from_location_id", &self.from_location_id, MAX_ID_CHARS);
        check.text("to_location_id", &self.to_location_id, MAX_ID_CHARS);
        if self.from_location_id == self.to_location_id {
            check.fail("to_location_id", "invalid", "must differ from from_location_id");
        }
        check_quantity(&mut check, "quantity", self.quantity);
        check_reference(&mut check, self.reference.as_deref());
        check.done()
    }
}

fn check_quantity(check: &mut Check, field: &str, quantity: i64) {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        check.fail(field, "out_of_range", format!("must be between 1 and {MAX_QUANTITY}"));
    }
}

fn check_reference(check: &mut Check, reference: Option<&str>) {
    let Some(text) = reference else { return };
    if text.chars().count() > MAX_REFERENCE_CHARS {
        check.fail(
            "reference",
            "too_long",
            format!("must be at most {MAX_REFERENCE_CHARS} characters"),
        );
    }
    check.characters("reference", text, Lines::One);
}

// ───────────────────────────── channel availability ─────────────────────────────

/// What a channel may sell of one SKU: its locations' available stock, less the channel's
/// buffer (units, then a percentage rounded up so the buffer never holds back too little).
pub fn channel_available(buffer: &StockBuffer, location_availables: &[i64]) -> i64 {
    let total: i128 = location_availables.iter().map(|&a| i128::from(a.max(0))).sum();
    let units = i128::from(buffer.units.unwrap_or(0).max(0));
    let percent = i128::from(buffer.percent.unwrap_or(0).clamp(0, 100));
    let by_percent = (total * percent + 99) / 100;
    to_i64((total - units - by_percent).max(0))
}

/// What one location shows to a channel: never more than the channel as a whole may sell,
/// or the buffer could be sold through a single store.
pub fn location_available_for_channel(location_available: i64, channel_available: i64) -> i64 {
    location_available.min(channel_available).max(0)
}

/// SKU → location → the units available there (on hand less reserved, never below 0).
pub type StockMap = BTreeMap<String, BTreeMap<String, i64>>;

/// What decides a channel's sellable stock: its buffer and the locations it sells from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStock {
    pub id: String,
    pub buffer: StockBuffer,
    pub locations: Vec<String>,
}

impl ChannelStock {
    pub fn of(channel: &Channel) -> Self {
        ChannelStock {
            id: channel.id.clone(),
            buffer: channel.draft.stock_buffer.clone(),
            locations: channel.draft.location_ids.clone(),
        }
    }

    /// What the channel may sell of `sku` from `stock`.
    pub fn sellable(&self, stock: &StockMap, sku: &str) -> i64 {
        let at = stock.get(sku);
        let availables: Vec<i64> = self
            .locations
            .iter()
            .map(|l| at.and_then(|a| a.get(l)).copied().unwrap_or(0))
            .collect();
        channel_available(&self.buffer, &availables)
    }

    /// Each SKU the lines (summed per SKU) want more of than the channel may sell: the
    /// channel's buffer holds some stock back from it, wherever the lines are sourced.
    pub fn beyond_sellable(&self, lines: &[ReservationLineDraft], stock: &StockMap) -> Vec<FieldError> {
        let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
        for line in lines {
            *wanted.entry(&line.sku).or_default() += line.quantity;
        }
        wanted
            .into_iter()
            .filter_map(|(sku, quantity)| {
                let sellable = self.sellable(stock, sku);
                (quantity > sellable).then(|| FieldError {
                    field: "lines".into(),
                    code: "insufficient_stock".into(),
                    message: format!("{quantity} units of {sku} requested, {sellable} available in this channel"),
                })
            })
            .collect()
    }
}

/// One channel's sellable quantity of one SKU, changed by a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AvailabilityChange {
    pub channel_id: String,
    pub sku: String,
    pub available: i64,
    pub previous: i64,
}

/// Every channel's sellable quantity of each of `skus` that differs between `before` and
/// `after` a write.
pub fn availability_changes(
    channels: &[ChannelStock],
    skus: &BTreeSet<String>,
    before: &StockMap,
    after: &StockMap,
) -> Vec<AvailabilityChange> {
    let mut changes = Vec::new();
    for channel in channels {
        for sku in skus {
            let (was, is) = (channel.sellable(before, sku), channel.sellable(after, sku));
            if was != is {
                changes.push(AvailabilityChange {
                    channel_id: channel.id.clone(),
                    sku: sku.clone(),
                    available: is,
                    previous: was,
                });
            }
        }
    }
    changes
}

/// The locations a sourcing strategy may choose from, each with its stock of the SKUs wanted
/// and its distance to the customer where known.
pub fn candidates(locations: &[Location], distances: &BTreeMap<String, f64>, stock: &StockMap) -> Vec<Candidate> {
    locations
        .iter()
        .map(|location| Candidate {
            location_id: location.id.clone(),
            priority: location.draft.priority,
            distance_km: distances.get(&location.id).copied(),
            stock: stock
                .iter()
                .filter_map(|(sku, at)| at.get(&location.id).map(|n| (sku.clone(), *n)))
                .collect(),
        })
        .collect()
}

fn to_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

// ───────────────────────────── reservations ─────────────────────────────

/// One line of a reservation: a SKU, how many, and optionally the location it must come
/// from (click and collect, reserve in store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReservationLineDraft {
    pub sku: String,
    pub quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

/// What a client sends to hold stock for a while (a checkout, a try-on in store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReservationDraft {
    pub channel_id: String,
    pub lines: Vec<ReservationLineDraft>,
    /// How long the stock is held, in seconds (default 900, at most 30 days).
    #[serde(default = "default_ttl_seconds")]
    pub ttl_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

fn default_ttl_seconds() -> i64 {
    DEFAULT_RESERVATION_TTL_SECONDS
}

impl ReservationDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("channel_id", &self.channel_id, MAX_ID_CHARS);
        self.check_lines(&mut check);
        if !(1..=MAX_RESERVATION_TTL_SECONDS).contains(&self.ttl_seconds) {
            check.fail(
                "ttl_seconds",
                "out_of_range",
                format!("must be between 1 and {MAX_RESERVATION_TTL_SECONDS} (30 days)"),
            );
        }
        check_reference(&mut check, self.reference.as_deref());
        check.done()
    }

    fn check_lines(&self, check: &mut Check) {
        if self.lines.is_empty() {
            check.fail("lines", "required", "a reservation needs at least one line");
        } else if self.lines.len() > MAX_RESERVATION_LINES {
            check.fail("lines", "too_long", format!("at most {MAX_RESERVATION_LINES} lines"));
        }
        // The same SKU twice from the same place is one line; ask for the sum instead.
        let mut seen = HashSet::new();
        for (i, line) in self.lines.iter().enumerate() {
            check_sku(&format!("lines[{i}].sku"), &line.sku, check);
            check_quantity(check, &format!("lines[{i}].quantity"), line.quantity);
            if let Some(location_id) = &line.location_id {
                check.text(&format!("lines[{i}].location_id"), location_id, MAX_ID_CHARS);
            }
            if !seen.insert((line.sku.as_str(), line.location_id.as_deref())) {
                check.fail(
                    format!("lines[{i}].sku"),
                    "duplicate",
                    "is asked for twice from the same place",
                );
            }
        }
    }

    /// When a reservation made `now` lets its stock go.
    pub fn expires_at(&self, now: Timestamp) -> Timestamp {
        now.plus_seconds(self.ttl_seconds)
    }
}

/// Units of one line taken from one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Allocation {
    pub location_id: String,
    pub quantity: i64,
}

/// A line with the locations its units come from; the allocations add up to `quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sourced {
    pub sku: String,
    pub quantity: i64,
    pub allocations: Vec<Allocation>,
}

/// A location the channel may sell from, with what it has available per SKU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    pub location_id: String,
    /// Higher is preferred.
    pub priority: i64,
    /// Distance to the customer, when both places are known.
    pub distance_km: Option<f64>,
    /// SKU → available units.
    pub stock: BTreeMap<String, i64>,
}

/// A line that cannot be served: how many were asked for and how many could be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shortage {
    pub sku: String,
    pub requested: i64,
    pub available: i64,
}

/// Not enough stock: every short line, in the order of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("insufficient stock for {}", .0.iter().map(|s| s.sku.as_str()).collect::<Vec<_>>().join(", "))]
pub struct Short(pub Vec<Shortage>);

impl Short {
    /// One field error per short line (`lines[2].quantity`), for the 409 answer.
    pub fn field_errors(&self, lines: &[ReservationLineDraft]) -> Vec<FieldError> {
        // Shortages come in line order, so each one is the next line with its SKU and quantity.
        let mut next = 0;
        let mut errors = Vec::with_capacity(self.0.len());
        for shortage in &self.0 {
            let found = lines
                .iter()
                .enumerate()
                .skip(next)
                .find(|(_, line)| line.sku == shortage.sku && line.quantity == shortage.requested);
            let field = match found {
                Some((i, _)) => {
                    next = i + 1;
                    format!("lines[{i}].quantity")
                }
                None => "lines".to_owned(),
            };
            errors.push(FieldError {
                field,
                code: "insufficient_stock".to_owned(),
                message: format!(
                    "{} units of {} requested, {} available",
                    shortage.requested, shortage.sku, shortage.available
                ),
            });
        }
        errors
    }
}

/// Decides which locations serve a reservation's lines. All lines or none: on `Short` nothing
/// is taken. `candidates` are only the locations the channel may sell from.
pub trait SourcingStrategy: Send + Sync {
    fn source(&self, lines: &[ReservationLineDraft], candidates: &[Candidate]) -> Result<Vec<Sourced>, Short>;
}

/// The default strategy: as few locations as possible, so as few parcels as possible.
///
/// Lines naming a location are taken there. The other lines go to one location that can serve
/// them all when there is one; otherwise each line goes to the best location that has all of
/// it, and is split over several only when none has.
#[derive(Debug, Clone, Copy, Default)]
pub struct FewestSplits;

impl SourcingStrategy for FewestSplits {
    fn source(&self, lines: &[ReservationLineDraft], candidates: &[Candidate]) -> Result<Vec<Sourced>, Short> {
        let mut pool = Pool::new(candidates);
        let mut outcomes: Vec<Result<Vec<Allocation>, Shortage>> = vec![Ok(Vec::new()); lines.len()];
        // Pinned lines have no choice, so they are served before the others can take their stock.
        for (outcome, line) in outcomes.iter_mut().zip(lines) {
            if let Some(location_id) = &line.location_id {
                *outcome = pool.take_pinned(line, location_id);
            }
        }
        let floating: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].location_id.is_none()).collect();
        match pool.one_location_for(lines, &floating) {
            Some(at) => {
                for &i in &floating {
                    let mut allocations = Vec::new();
                    pool.take(at, &lines[i].sku, lines[i].quantity, &mut allocations);
                    outcomes[i] = Ok(allocations);
                }
            }
            None => {
                for &i in &floating {
                    outcomes[i] = pool.take_anywhere(&lines[i]);
                }
            }
        }
        finish(lines, outcomes)
    }
}

fn finish(
    lines: &[ReservationLineDraft],
    outcomes: Vec<Result<Vec<Allocation>, Shortage>>,
) -> Result<Vec<Sourced>, Short> {
    let mut sourced = Vec::with_capacity(lines.len());
    let mut shortages = Vec::new();
    for (line, outcome) in lines.iter().zip(outcomes) {
        match outcome {
            Ok(allocations) => sourced.push(Sourced {
                sku: line.sku.clone(),
                quantity: line.quantity,
                allocations,
            }),
            Err(shortage) => shortages.push(shortage),
        }
    }
    if shortages.is_empty() {
        Ok(sourced)
    } else {
        Err(Short(shortages))
    }
}

fn shortage(line: &ReservationLineDraft, available: i64) -> Shortage {
    Shortage {
        sku: line.sku.clone(),
        requested: line.quantity,
        available,
    }
}

/// What is left at each candidate while the lines of one reservation are sourced, so a later
/// line never counts stock an earlier one already took.
struct Pool<'a> {
    candidates: &'a [Candidate],
    left: Vec<BTreeMap<String, i64>>,
}

impl<'a> Pool<'a> {
    fn new(candidates: &'a [Candidate]) -> Self {
        let left = candidates
            .iter()
            .map(|c| c.stock.iter().map(|(sku, &n)| (sku.clone(), n.max(0))).collect())
            .collect();
        Pool { candidates, left }
    }

    fn left(&self, at: usize, sku: &str) -> i64 {
        self.left[at].get(sku).copied().unwrap_or(0)
    }

    fn total(&self, sku: &str) -> i64 {
        (0..self.left.len())
            .map(|at| self.left(at, sku))
            .fold(0, i64::saturating_add)
    }

    /// Takes `quantity` (at most what is left) and records it; nothing for nothing.
    fn take(&mut self, at: usize, sku: &str, quantity: i64, into: &mut Vec<Allocation>) {
        if quantity <= 0 {
            return;
        }
        if let Some(left) = self.left[at].get_mut(sku) {
            *left -= quantity;
        }
        into.push(Allocation {
            location_id: self.candidates[at].location_id.clone(),
            quantity,
        });
    }

    fn take_pinned(&mut self, line: &ReservationLineDraft, location_id: &str) -> Result<Vec<Allocation>, Shortage> {
        // A location the channel may not sell from has nothing for it.
        let at = self.candidates.iter().position(|c| c.location_id == location_id);
        let available = at.map_or(0, |at| self.left(at, &line.sku));
        let mut allocations = Vec::new();
        match at {
            Some(at) if available >= line.quantity => self.take(at, &line.sku, line.quantity, &mut allocations),
            _ if line.quantity <= 0 => {}
            _ => return Err(shortage(line, available)),
        }
        Ok(allocations)
    }

    fn take_anywhere(&mut self, line: &ReservationLineDraft) -> Result<Vec<Allocation>, Shortage> {
        let sku = line.sku.as_str();
        let available = self.total(sku);
        if available < line.quantity {
            return Err(shortage(line, available));
        }
        let ranked = self.ranked_for(sku);
        let mut allocations = Vec::new();
        if let Some(&at) = ranked.iter().find(|&&at| self.left(at, sku) >= line.quantity) {
            self.take(at, sku, line.quantity, &mut allocations);
            return Ok(allocations);
        }
        let mut rest = line.quantity;
        for at in ranked {
            let quantity = rest.min(self.left(at, sku));
            self.take(at, sku, quantity, &mut allocations);
            rest -= quantity.max(0);
        }
        Ok(allocations)
    }

    /// The candidates in the order one line of `sku` should try them.
    fn ranked_for(&self, sku: &str) -> Vec<usize> {
        let mut ranked: Vec<usize> = (0..self.candidates.len()).collect();
        ranked.sort_by(|&a, &b| {
            self.preferred(a, b)
                .then_with(|| self.left(b, sku).cmp(&self.left(a, sku)))
                .then_with(|| self.id_order(a, b))
        });
        ranked
    }

    /// The best location that has enough for every floating line, if any.
    fn one_location_for(&self, lines: &[ReservationLineDraft], floating: &[usize]) -> Option<usize> {
        if floating.is_empty() {
            return None;
        }
        let mut needs: BTreeMap<&str, i64> = BTreeMap::new();
        for &i in floating {
            let need = needs.entry(lines[i].sku.as_str()).or_default();
            *need = need.saturating_add(lines[i].quantity);
        }
        let stock_of_needs = |at: usize| needs.keys().map(|sku| self.left(at, sku)).fold(0, i64::saturating_add);
        (0..self.candidates.len())
            .filter(|&at| needs.iter().all(|(sku, &need)| self.left(at, sku) >= need))
            .min_by(|&a, &b| {
                self.preferred(a, b)
                    .then_with(|| stock_of_needs(b).cmp(&stock_of_needs(a)))
                    .then_with(|| self.id_order(a, b))
            })
    }

    /// Higher priority first, then nearer; a known distance beats an unknown one.
    fn preferred(&self, a: usize, b: usize) -> Ordering {
        let (a, b) = (&self.candidates[a], &self.candidates[b]);
        b.priority
            .cmp(&a.priority)
            .then_with(|| match (a.distance_km, b.distance_km) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            })
    }

    fn id_order(&self, a: usize, b: usize) -> Ordering {
        self.candidates[a].location_id.cmp(&self.candidates[b].location_id)
    }
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Holding stock.
    Active,
    /// Let go by the client.
    Released,
    /// Let go because its time ran out.
    Expired,
    /// Turned into an order; the stock left with it.
    Consumed,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Active => "active",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Consumed => "consumed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ReservationStatus::Active,
            ReservationStatus::Released,
            ReservationStatus::Expired,
            ReservationStatus::Consumed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    /// A final reservation holds nothing and never changes again.
    pub fn is_final(self) -> bool {
        self != ReservationStatus::Active
    }
}

/// Whether a reservation's time is up: its stock is free again from `expires_at` on.
pub fn is_lapsed(expires_at: Timestamp, now: Timestamp) -> bool {
    now >= expires_at
}

// ───────────────────────────── replenishment ─────────────────────────────

/// A reorder suggestion for one SKU at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reorder {
    /// Units sold per day, times 1000 (1500 is 1.5 a day).
    pub velocity_per_day_milli: i64,
    /// Order when available falls to this: what sells during the lead time, plus safety stock.
    pub reorder_point: i64,
    /// Units to order now; 0 while available is above the reorder point.
    pub suggested_quantity: i64,
}

/// Suggests a reorder from the sales of the last `window_days`. At or below the reorder point,
/// it orders enough to last the lead time and the review period with the safety stock intact.
pub fn suggest_reorder(
    units_sold: i64,
    window_days: i64,
    lead_time_days: i64,
    safety_stock: i64,
    review_days: i64,
    available: i64,
) -> Reorder {
    let sold = i128::from(units_sold.max(0));
    let window = i128::from(window_days.max(0));
    let safety = i128::from(safety_stock.max(0));
    let lead = i128::from(lead_time_days.max(0));
    let review = i128::from(review_days.max(0));
    // Units sold over `days` at the window's pace, rounded up: a part unit still has to be there.
    let demand_over = |days: i128| {
        if window == 0 {
            0
        } else {
            (sold * days + window - 1) / window
        }
    };
    let velocity = if window == 0 { 0 } else { sold * 1000 / window };
    let reorder_point = demand_over(lead) + safety;
    let suggested = if i128::from(available) <= reorder_point {
        (demand_over(lead + review) + safety - i128::from(available)).max(0)
    } else {
        0
    };
    Reorder {
        velocity_per_day_milli: to_i64(velocity),
        reorder_point: to_i64(reorder_point),
        suggested_quantity: to_i64(suggested),
    }
}

// ───────────────────────────── records ─────────────────────────────

/// One row of the append-only movement ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Movement {
    pub id: String,
    pub sku: String,
    pub location_id: String,
    /// The change of `on_hand`.
    pub delta: i64,
    pub reason: MovementReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// `on_hand` right after this movement.
    pub on_hand_after: i64,
    pub at: Timestamp,
}

/// Stock held for a channel until it is taken, released or lapses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    pub id: String,
    pub channel_id: String,
    pub status: ReservationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub lines: Vec<Sourced>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// A reorder suggestion for one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReorderRow {
    pub sku: String,
    pub location_id: String,
    pub available: i64,
    /// Units sold over the window.
    pub units_sold: i64,
    #[serde(flatten)]
    pub reorder: Reorder,
}

/// What a channel may sell of one SKU, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkuAvailability {
    pub sku: String,
    /// What the channel may sell now: its locations' stock less reservations, less its buffer.
    pub available: i64,
    pub locations: Vec<LocationAvailability>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocationAvailability {
    pub location_id: String,
    pub available: i64,
    /// Customers may pick up here.
    pub pickup: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store_and_warehouse(buffer_units: Option<i64>) -> ChannelStock {
        ChannelStock {
            id: "web".into(),
            buffer: StockBuffer {
                units: buffer_units,
                percent: None,
            },
            locations: vec!["store".into(), "warehouse".into()],
        }
    }

    fn stock_of(entries: &[(&str, &str, i64)]) -> StockMap {
        let mut stock = StockMap::new();
        for (sku, location, n) in entries {
            stock
                .entry(sku.to_string())
                .or_default()
                .insert(location.to_string(), *n);
        }
        stock
    }

    fn wanted(sku: &str, quantity: i64, location: Option<&str>) -> ReservationLineDraft {
        ReservationLineDraft {
            sku: sku.into(),
            quantity,
            location_id: location.map(str::to_owned),
        }
    }

    #[test]
    fn a_channel_sells_from_its_own_locations_less_its_buffer_summed_per_sku() {
        let channel = store_and_warehouse(Some(2));
        let stock = stock_of(&[("A", "store", 3), ("A", "warehouse", 4), ("A", "elsewhere", 50)]);
        assert_eq!(channel.sellable(&stock, "A"), 5);
        assert_eq!(channel.sellable(&stock, "unknown"), 0);
        // Two lines of one SKU at two locations are weighed together against the buffer.
        let lines = [wanted("A", 3, Some("store")), wanted("A", 3, Some("warehouse"))];
        let beyond = channel.beyond_sellable(&lines, &stock);
        assert_eq!(beyond.len(), 1);
        assert_eq!(beyond[0].message, "6 units of A requested, 5 available in this channel");
        assert!(channel.beyond_sellable(&lines[..1], &stock).is_empty());
    }

    #[test]
    fn only_the_channels_whose_sellable_quantity_moved_are_told() {
        let web = store_and_warehouse(Some(2));
        let outlet = ChannelStock {
            id: "outlet".into(),
            buffer: StockBuffer::default(),
            locations: vec!["elsewhere".into()],
        };
        let skus: BTreeSet<String> = ["A".to_string()].into();
        let before = stock_of(&[("A", "store", 3), ("A", "elsewhere", 1)]);
        let after = stock_of(&[("A", "store", 2), ("A", "elsewhere", 1)]);
        let changes = availability_changes(&[web, outlet], &skus, &before, &after);
        assert_eq!(
            changes,
            [AvailabilityChange {
                channel_id: "web".into(),
                sku: "A".into(),
                available: 0,
                previous: 1
            }]
        );
    }

    fn level(on_hand: i64, reserved: i64) -> Level {
        Level {
            sku: "TEE-M".into(),
            location_id: "loc_1".into(),
            on_hand,
            reserved,
            version: 3,
        }
    }

    fn adjustment(delta: Option<i64>, set_on_hand: Option<i64>) -> AdjustmentDraft {
        AdjustmentDraft {
            sku: "TEE-M".into(),
            location_id: "loc_1".into(),
            delta,
            set_on_hand,
            reason: MovementReason::Count,
            reference: None,
        }
    }

    fn fields(invalid: Invalid) -> Vec<(String, String)> {
        invalid.0.into_iter().map(|e| (e.field, e.code)).collect()
    }

    fn field(name: &str, code: &str) -> (String, String) {
        (name.to_owned(), code.to_owned())
    }

    fn candidate(id: &str, priority: i64, distance_km: Option<f64>, stock: &[(&str, i64)]) -> Candidate {
        Candidate {
            location_id: id.into(),
            priority,
            distance_km,
            stock: stock.iter().map(|&(sku, n)| (sku.to_owned(), n)).collect(),
        }
    }

    fn line(sku: &str, quantity: i64, location_id: Option<&str>) -> ReservationLineDraft {
        ReservationLineDraft {
            sku: sku.into(),
            quantity,
            location_id: location_id.map(str::to_owned),
        }
    }

    fn at(location_id: &str, quantity: i64) -> Allocation {
        Allocation {
            location_id: location_id.into(),
            quantity,
        }
    }

    fn allocations(sourced: &[Sourced]) -> Vec<Vec<Allocation>> {
        sourced.iter().map(|s| s.allocations.clone()).collect()
    }

    // ── levels ──

    #[test]
    fn available_is_on_hand_less_reserved_and_never_negative() {
        assert_eq!(level(10, 3).available(), 7);
        assert_eq!(level(2, 5).available(), 0);
        assert_eq!(level(i64::MIN, i64::MAX).available(), 0);
    }

    #[test]
    fn level_json_shows_available() {
        let json = serde_json::to_string(&level(10, 3)).unwrap();
        assert_eq!(
            json,
            r#"{"sku":"TEE-M","location_id":"loc_1","on_hand":10,"reserved":3,"available":7,"version":3}"#
        );
        let back: Level = serde_json::from_str(&json).unwrap();
        assert_eq!(back, level(10, 3));
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn level_schema_shows_available() {
        use utoipa::{PartialSchema, ToSchema};
        let schema = serde_json::to_value(Level::schema()).unwrap();
        assert!(schema["properties"]["available"].is_object(), "{schema}");
        assert_eq!(Level::name(), "Level");
    }

    // ── movements ──

    #[test]
    fn reasons_round_trip_and_only_non_transfers_are_manual() {
        for reason in MovementReason::ALL {
            assert_eq!(MovementReason::parse(reason.as_str()), Some(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        let manual: Vec<_> = MovementReason::ALL.into_iter().filter(|r| r.is_manual()).collect();
        assert_eq!(manual.len(), 6);
        assert!(!MovementReason::TransferOut.is_manual());
        assert!(!MovementReason::TransferIn.is_manual());
        assert_eq!(MovementReason::parse("reservation"), None);
    }

    // ── adjustments ──

    #[test]
    fn adjustment_needs_exactly_one_change() {
        assert!(adjustment(Some(5), None).validate().is_ok());
        assert!(adjustment(None, Some(0)).validate().is_ok());
        assert_eq!(
            fields(adjustment(None, None).validate().unwrap_err()),
            [field("delta", "required")]
        );
        assert_eq!(
            fields(adjustment(Some(1), Some(1)).validate().unwrap_err()),
            [field("set_on_hand", "invalid")]
        );
        assert_eq!(
            fields(adjustment(Some(0), None).validate().unwrap_err()),
            [field("delta", "out_of_range")]
        );
        assert_eq!(
            fields(adjustment(None, Some(-1)).validate().unwrap_err()),
            [field("set_on_hand", "out_of_range")]
        );
        assert!(adjustment(Some(-MAX_QUANTITY - 1), None).validate().is_err());
    }

    #[test]
    fn adjustment_refuses_transfer_reasons_and_long_references() {
        let mut draft = adjustment(Some(1), None);
        draft.reason = MovementReason::TransferIn;
        draft.reference = Some("x".repeat(201));
        draft.sku = "has space".into();
        assert_eq!(
            fields(draft.validate().unwrap_err()),
            [
                field("sku", "invalid"),
                field("reason", "invalid"),
                field("reference", "too_long")
            ]
        );
        draft = adjustment(Some(1), None);
        draft.reference = Some("é".repeat(200));
        assert!(draft.validate().is_ok());
    }

    #[test]
    fn adjustment_json_refuses_unknown_fields() {
        let ok = r#"{"sku":"A","location_id":"loc_1","delta":-2,"reason":"damage"}"#;
        let draft: AdjustmentDraft = serde_json::from_str(ok).unwrap();
        assert_eq!(draft.delta, Some(-2));
        assert_eq!(draft.reason, MovementReason::Damage);
        let unknown = r#"{"sku":"A","location_id":"loc_1","delta":1,"reason":"receipt","qty":1}"#;
        assert!(serde_json::from_str::<AdjustmentDraft>(unknown).is_err());
    }

    #[test]
    fn delta_and_count_resolve_against_the_level() {
        assert_eq!(adjustment(Some(4), None).resolve_delta(&level(10, 3)), Ok(4));
        assert_eq!(adjustment(Some(-7), None).resolve_delta(&level(10, 3)), Ok(-7));
        assert_eq!(adjustment(None, Some(12)).resolve_delta(&level(10, 3)), Ok(2));
        assert_eq!(adjustment(None, Some(3)).resolve_delta(&level(10, 3)), Ok(-7));
        assert_eq!(adjustment(None, Some(10)).resolve_delta(&level(10, 3)), Ok(0));
    }

    #[test]
    fn stock_may_not_fall_below_what_is_reserved() {
        let err = adjustment(Some(-8), None).resolve_delta(&level(10, 3)).unwrap_err();
        assert_eq!(err.0[0].field, "delta");
        assert_eq!(err.0[0].code, "below_reserved");
        assert!(
            err.0[0].message.contains("3 units are reserved"),
            "{}",
            err.0[0].message
        );
        let err = adjustment(None, Some(0)).resolve_delta(&level(10, 3)).unwrap_err();
        assert_eq!(fields(err), [field("set_on_hand", "below_reserved")]);
    }

    #[test]
    fn stock_may_not_fall_below_zero() {
        let err = adjustment(Some(-11), None).resolve_delta(&level(10, 0)).unwrap_err();
        assert_eq!(fields(err), [field("delta", "out_of_range")]);
        assert_eq!(adjustment(Some(-10), None).resolve_delta(&level(10, 0)), Ok(-10));
    }

    #[test]
    fn raising_stock_is_allowed_on_an_over_reserved_level() {
        // A backorder left 5 reserved with nothing on hand; receiving 2 must still be possible.
        assert_eq!(adjustment(Some(2), None).resolve_delta(&level(0, 5)), Ok(2));
        assert_eq!(adjustment(Some(-1), None).resolve_delta(&level(6, 5)), Ok(-1));
        assert!(adjustment(Some(-2), None).resolve_delta(&level(6, 5)).is_err());
        assert!(adjustment(Some(1), None).resolve_delta(&level(i64::MAX, 0)).is_err());
    }

    // ── transfers ──

    #[test]
    fn transfer_needs_two_places_and_a_positive_quantity() {
        let mut draft = TransferDraft {
            sku: "TEE-M".into(),
            from_location_id: "loc_1".into(),
            to_location_id: "loc_2".into(),
            quantity: 4,
            reference: None,
        };
        assert!(draft.validate().is_ok());
        draft.to_location_id = "loc_1".into();
        draft.quantity = 0;
        assert_eq!(
            fields(draft.validate().unwrap_err()),
            [field("to_location_id", "invalid"), field("quantity", "out_of_range")]
        );
    }

    // ── channel availability ──

    fn buffer(units: Option<i64>, percent: Option<i64>) -> StockBuffer {
        StockBuffer { units, percent }
    }

    #[test]
    fn channel_availability_sums_locations_less_the_buffer() {
        assert_eq!(channel_available(&buffer(None, None), &[4, 6]), 10);
        assert_eq!(channel_available(&buffer(Some(3), None), &[4, 6]), 7);
        // 10 % of 11 is 1.1, held back as 2 whole units.
        assert_eq!(channel_available(&buffer(None, Some(10)), &[5, 6]), 9);
        assert_eq!(channel_available(&buffer(Some(2), Some(10)), &[5, 6]), 7);
        assert_eq!(channel_available(&buffer(Some(20), None), &[5, 6]), 0);
        assert_eq!(channel_available(&buffer(None, Some(100)), &[5, 6]), 0);
        assert_eq!(channel_available(&buffer(None, None), &[]), 0);
    }

    #[test]
    fn an_over_reserved_location_does_not_eat_another_ones_stock() {
        assert_eq!(channel_available(&buffer(None, None), &[-4, 6]), 6);
    }

    #[test]
    fn a_location_never_shows_more_than_its_channel() {
        assert_eq!(location_available_for_channel(8, 5), 5);
        assert_eq!(location_available_for_channel(3, 5), 3);
        assert_eq!(location_available_for_channel(-2, 5), 0);
        assert_eq!(location_available_for_channel(3, 0), 0);
    }

    // ── reservation drafts ──

    fn reservation(lines: Vec<ReservationLineDraft>) -> ReservationDraft {
        ReservationDraft {
            channel_id: "chn_1".into(),
            lines,
            ttl_seconds: 900,
            reference: None,
        }
    }

    #[test]
    fn reservation_lines_are_checked() {
        assert!(reservation(vec![line("A", 1, None)]).validate().is_ok());
        assert_eq!(
            fields(reservation(vec![]).validate().unwrap_err()),
            [field("lines", "required")]
        );
        let many = (0..101).map(|i| line(&format!("S{i}"), 1, None)).collect();
        assert_eq!(
            fields(reservation(many).validate().unwrap_err()),
            [field("lines", "too_long")]
        );
        let draft = reservation(vec![
            line("A", 1, None),
            line("A", 2, Some("loc_1")),
            line("A", 0, None),
            line("B", 1, Some("loc_1")),
            line("B", 1, Some("loc_1")),
        ]);
        assert_eq!(
            fields(draft.validate().unwrap_err()),
            [
                field("lines[2].quantity", "out_of_range"),
                field("lines[2].sku", "duplicate"),
                field("lines[4].sku", "duplicate")
            ]
        );
    }

    #[test]
    fn reservation_ttl_defaults_to_fifteen_minutes_and_is_bounded() {
        let draft: ReservationDraft =
            serde_json::from_str(r#"{"channel_id":"chn_1","lines":[{"sku":"A","quantity":1}]}"#).unwrap();
        assert_eq!(draft.ttl_seconds, DEFAULT_RESERVATION_TTL_SECONDS);
        assert_eq!(draft.expires_at(Timestamp(1_000)), Timestamp(901_000));
        let mut draft = reservation(vec![line("A", 1, None)]);
        draft.ttl_seconds = MAX_RESERVATION_TTL_SECONDS;
        assert!(draft.validate().is_ok());
        for ttl in [0, MAX_RESERVATION_TTL_SECONDS + 1] {
            draft.ttl_seconds = ttl;
            assert_eq!(
                fields(draft.validate().unwrap_err()),
                [field("ttl_seconds", "out_of_range")]
            );
        }
    }

    // ── sourcing ──

    #[test]
    fn one_location_serves_everything_when_it_can() {
        let candidates = [
            candidate("loc_a", 5, None, &[("A", 10)]),
            candidate("loc_b", 0, None, &[("A", 2), ("B", 2)]),
        ];
        let lines = [line("A", 2, None), line("B", 1, None)];
        let sourced = FewestSplits.source(&lines, &candidates).unwrap();
        assert_eq!(allocations(&sourced), [vec![at("loc_b", 2)], vec![at("loc_b", 1)]]);
        assert_eq!(sourced[0].sku, "A");
        assert_eq!(sourced[1].quantity, 1);
    }

    #[test]
    fn single_location_ties_break_on_priority_distance_stock_then_id() {
        let lines = [line("A", 1, None)];
        let pick = |candidates: &[Candidate]| {
            FewestSplits.source(&lines, candidates).unwrap()[0].allocations[0]
                .location_id
                .clone()
        };
        let by_priority = [
            candidate("loc_a", 1, Some(1.0), &[("A", 9)]),
            candidate("loc_b", 2, Some(50.0), &[("A", 1)]),
        ];
        assert_eq!(pick(&by_priority), "loc_b");
        let by_distance = [
            candidate("loc_a", 0, None, &[("A", 9)]),
            candidate("loc_b", 0, Some(80.0), &[("A", 1)]),
            candidate("loc_c", 0, Some(20.0), &[("A", 1)]),
        ];
        assert_eq!(pick(&by_distance), "loc_c");
        let by_stock = [
            candidate("loc_a", 0, None, &[("A", 2)]),
            candidate("loc_b", 0, None, &[("A", 5)]),
        ];
        assert_eq!(pick(&by_stock), "loc_b");
        let by_id = [
            candidate("loc_b", 0, None, &[("A", 2)]),
            candidate("loc_a", 0, None, &[("A", 2)]),
        ];
        assert_eq!(pick(&by_id), "loc_a");
    }

    #[test]
    fn lines_go_to_their_best_location_when_none_has_everything() {
        let candidates = [
            candidate("loc_a", 2, None, &[("A", 5)]),
            candidate("loc_b", 1, None, &[("B", 5)]),
            candidate("loc_c", 0, None, &[("A", 5), ("B", 1)]),
        ];
        let lines = [line("A", 3, None), line("B", 3, None)];
        let sourced = FewestSplits.source(&lines, &candidates).unwrap();
        assert_eq!(allocations(&sourced), [vec![at("loc_a", 3)], vec![at("loc_b", 3)]]);
    }

    #[test]
    fn a_line_is_split_only_when_no_location_has_all_of_it() {
        let candidates = [
            candidate("loc_a", 2, None, &[("A", 3)]),
            candidate("loc_b", 1, None, &[("A", 10)]),
            candidate("loc_c", 0, None, &[("A", 4)]),
        ];
        let sourced = FewestSplits.source(&[line("A", 8, None)], &candidates).unwrap();
        assert_eq!(allocations(&sourced), [vec![at("loc_b", 8)]]);
        let sourced = FewestSplits.source(&[line("A", 15, None)], &candidates).unwrap();
        assert_eq!(
            allocations(&sourced),
            [vec![at("loc_a", 3), at("loc_b", 10), at("loc_c", 2)]]
        );
    }

    #[test]
    fn pinned_lines_are_taken_where_they_ask_before_the_others() {
        let candidates = [
            candidate("loc_store", 0, None, &[("A", 3)]),
            candidate("loc_wh", 9, None, &[("A", 2)]),
        ];
        // The floating line may not take the store's units the pinned line needs.
        let lines = [line("A", 3, None), line("A", 2, Some("loc_store"))];
        let sourced = FewestSplits.source(&lines, &candidates).unwrap();
        assert_eq!(
            allocations(&sourced),
            [vec![at("loc_wh", 2), at("loc_store", 1)], vec![at("loc_store", 2)]]
        );
    }

    #[test]
    fn a_pinned_line_at_a_location_the_channel_cannot_sell_from_is_short() {
        let candidates = [candidate("loc_a", 0, None, &[("A", 9)])];
        let err = FewestSplits
            .source(&[line("A", 1, Some("loc_other"))], &candidates)
            .unwrap_err();
        assert_eq!(
            err.0,
            [Shortage {
                sku: "A".into(),
                requested: 1,
                available: 0
            }]
        );
    }

    #[test]
    fn every_short_line_is_named_with_what_there_is() {
        let candidates = [
            candidate("loc_a", 0, None, &[("A", 2), ("B", 9)]),
            candidate("loc_b", 0, None, &[("A", 1), ("C", 1)]),
        ];
        let lines = [line("A", 4, None), line("B", 1, None), line("C", 5, Some("loc_b"))];
        let err = FewestSplits.source(&lines, &candidates).unwrap_err();
        assert_eq!(
            err.0,
            [
                Shortage {
                    sku: "A".into(),
                    requested: 4,
                    available: 3
                },
                Shortage {
                    sku: "C".into(),
                    requested: 5,
                    available: 1
                },
            ]
        );
        assert_eq!(err.to_string(), "insufficient stock for A, C");
        let errors = err.field_errors(&lines);
        assert_eq!(errors[0].field, "lines[0].quantity");
        assert_eq!(errors[1].field, "lines[2].quantity");
        assert_eq!(errors[1].code, "insufficient_stock");
        assert_eq!(errors[1].message, "5 units of C requested, 1 available");
    }

    #[test]
    fn stock_taken_by_earlier_lines_is_gone_for_later_ones() {
        let candidates = [candidate("loc_a", 0, None, &[("A", 5)])];
        let lines = [line("A", 4, Some("loc_a")), line("A", 2, Some("loc_a"))];
        let err = FewestSplits.source(&lines, &candidates).unwrap_err();
        assert_eq!(err.0[0].available, 1);
    }

    // ── reservation status ──

    #[test]
    fn only_active_reservations_are_open() {
        assert!(!ReservationStatus::Active.is_final());
        for status in [
            ReservationStatus::Released,
            ReservationStatus::Expired,
            ReservationStatus::Consumed,
        ] {
            assert!(status.is_final());
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            serde_json::to_string(&ReservationStatus::Consumed).unwrap(),
            "\"consumed\""
        );
    }

    #[test]
    fn a_reservation_lapses_at_its_expiry() {
        assert!(!is_lapsed(Timestamp(1000), Timestamp(999)));
        assert!(is_lapsed(Timestamp(1000), Timestamp(1000)));
        assert!(is_lapsed(Timestamp(1000), Timestamp(1001)));
    }

    // ── replenishment ──

    #[test]
    fn reorder_at_or_below_the_reorder_point() {
        // 30 sold in 30 days: 1 a day; 7 days lead time and 5 safety make the point 12.
        let reorder = suggest_reorder(30, 30, 7, 5, 14, 10);
        assert_eq!(
            reorder,
            Reorder {
                velocity_per_day_milli: 1000,
                reorder_point: 12,
                suggested_quantity: 16
            }
        );
        assert_eq!(suggest_reorder(30, 30, 7, 5, 14, 12).suggested_quantity, 14);
        assert_eq!(suggest_reorder(30, 30, 7, 5, 14, 13).suggested_quantity, 0);
    }

    #[test]
    fn part_units_of_demand_round_up() {
        // 10 in 30 days is a third a day: 7 days need 2.33, so 3.
        let reorder = suggest_reorder(10, 30, 7, 0, 0, 0);
        assert_eq!(reorder.velocity_per_day_milli, 333);
        assert_eq!(reorder.reorder_point, 3);
        assert_eq!(reorder.suggested_quantity, 3);
    }

    #[test]
    fn no_sales_history_keeps_only_the_safety_stock() {
        assert_eq!(
            suggest_reorder(0, 0, 7, 4, 7, 1),
            Reorder {
                velocity_per_day_milli: 0,
                reorder_point: 4,
                suggested_quantity: 3
            }
        );
    }

    // ── properties ──

    const SKUS: [&str; 3] = ["A", "B", "C"];

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        let one = (
            -1i64..3,
            prop::option::of(0.0f64..100.0),
            prop::collection::vec(-2i64..15, SKUS.len()),
        );
        prop::collection::vec(one, 1..5).prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (priority, distance_km, stock))| Candidate {
                    location_id: format!("loc_{i}"),
                    priority,
                    distance_km,
                    stock: SKUS.iter().map(|s| s.to_string()).zip(stock).collect(),
                })
                .collect()
        })
    }

    /// Lines for `SKUS`; with `pinned`, some name a location (`loc_5` is never a candidate).
    fn arb_lines(pinned: bool) -> impl Strategy<Value = Vec<ReservationLineDraft>> {
        let places = if pinned { 6 } else { 0 };
        let one = (0..SKUS.len(), 1i64..25, prop::option::weighted(0.4, 0..=places));
        prop::collection::vec(one, 1..6).prop_map(move |rows| {
            rows.into_iter()
                .map(|(sku, quantity, place)| ReservationLineDraft {
                    sku: SKUS[sku].to_owned(),
                    quantity,
                    location_id: place.filter(|_| pinned).map(|p| format!("loc_{p}")),
                })
                .collect()
        })
    }

    fn stock_at(candidate: &Candidate, sku: &str) -> i64 {
        candidate.stock.get(sku).copied().unwrap_or(0).max(0)
    }

    proptest! {
        #[test]
        fn channel_availability_is_never_negative_nor_more_than_the_locations(
            units in prop::option::of(-5i64..50),
            percent in prop::option::of(-5i64..120),
            locations in prop::collection::vec(-20i64..100, 0..6),
        ) {
            let available = channel_available(&buffer(units, percent), &locations);
            let sum: i64 = locations.iter().map(|&a| a.max(0)).sum();
            prop_assert!(available >= 0);
            prop_assert!(available <= sum);
        }

        #[test]
        fn a_bigger_buffer_never_shows_more_and_more_stock_never_shows_less(
            units in 0i64..50,
            percent in 0i64..=100,
            locations in prop::collection::vec(0i64..100, 1..6),
            more in 1i64..10,
        ) {
            let base = channel_available(&buffer(Some(units), Some(percent)), &locations);
            prop_assert!(channel_available(&buffer(Some(units + more), Some(percent)), &locations) <= base);
            let more_percent = (percent + more).min(100);
            prop_assert!(channel_available(&buffer(Some(units), Some(more_percent)), &locations) <= base);
            let mut stocked = locations.clone();
            stocked[0] += more;
            prop_assert!(channel_available(&buffer(Some(units), Some(percent)), &stocked) >= base);
        }

        #[test]
        fn sourcing_stays_within_stock_and_fills_each_line(
            candidates in arb_candidates(),
            lines in arb_lines(true),
        ) {
            let Ok(sourced) = FewestSplits.source(&lines, &candidates) else { return Ok(()) };
            prop_assert_eq!(sourced.len(), lines.len());
            let mut used: BTreeMap<(String, String), i64> = BTreeMap::new();
            for (line, s) in lines.iter().zip(&sourced) {
                prop_assert_eq!(&s.sku, &line.sku);
                prop_assert_eq!(s.allocations.iter().map(|a| a.quantity).sum::<i64>(), line.quantity);
                for a in &s.allocations {
                    prop_assert!(a.quantity > 0);
                    if let Some(pinned) = &line.location_id {
                        prop_assert_eq!(&a.location_id, pinned);
                    }
                    *used.entry((a.location_id.clone(), line.sku.clone())).or_default() += a.quantity;
                }
            }
            for ((location_id, sku), n) in used {
                let candidate = candidates.iter().find(|c| c.location_id == location_id);
                prop_assert!(candidate.is_some_and(|c| n <= stock_at(c, &sku)));
            }
        }

        #[test]
        fn sourcing_is_short_exactly_when_a_sku_lacks_stock(
            candidates in arb_candidates(),
            lines in arb_lines(false),
        ) {
            let lacking = SKUS.iter().any(|sku| {
                let requested: i64 = lines.iter().filter(|l| l.sku == *sku).map(|l| l.quantity).sum();
                let total: i64 = candidates.iter().map(|c| stock_at(c, sku)).sum();
                total < requested
            });
            match FewestSplits.source(&lines, &candidates) {
                Ok(_) => prop_assert!(!lacking),
                Err(Short(shortages)) => {
                    prop_assert!(lacking);
                    prop_assert!(shortages.iter().all(|s| s.available < s.requested));
                }
            }
        }

        #[test]
        fn one_location_is_used_whenever_one_can_serve_everything(
            mut candidates in arb_candidates(),
            lines in arb_lines(false),
            rich in any::<prop::sample::Index>(),
            spare in 0i64..5,
        ) {
            // Make sure some location can serve everything, whatever else the others hold.
            let rich = rich.index(candidates.len());
            for sku in SKUS {
                let requested: i64 = lines.iter().filter(|l| l.sku == sku).map(|l| l.quantity).sum();
                candidates[rich].stock.insert(sku.to_owned(), requested + spare);
            }
            let sourced = FewestSplits.source(&lines, &candidates).unwrap();
            let places: HashSet<&str> = sourced.iter()
                .flat_map(|s| s.allocations.iter().map(|a| a.location_id.as_str()))
                .collect();
            prop_assert_eq!(places.len(), 1);
        }

        #[test]
        fn a_reorder_restores_at_least_the_reorder_point(
            sold in 0i64..10_000,
            window in 0i64..365,
            lead in 0i64..60,
            safety in 0i64..100,
            review in 0i64..60,
            available in -50i64..500,
        ) {
            let reorder = suggest_reorder(sold, window, lead, safety, review, available);
            prop_assert!(reorder.suggested_quantity >= 0);
            prop_assert!(reorder.reorder_point >= safety);
            if available <= reorder.reorder_point {
                prop_assert!(available + reorder.suggested_quantity >= reorder.reorder_point);
            } else {
                prop_assert_eq!(reorder.suggested_quantity, 0);
            }
        }
    }
}
