//! Customers: the identities that recognise one person on every channel, their consents,
//! loyalty rules and merge rules.
//!
//! Invariant 5 ("one identity, one customer") only holds if every spelling of one identity
//! normalises to the same value, so that the store's unique index sees one key: an e-mail in
//! any case, a phone number in any national or international format, a WhatsApp id (which is
//! a phone number and therefore becomes a `phone` identity).

use std::collections::{BTreeMap, HashSet};

/// A phone-numbering region (`Region::DE`): where numbers written without a country code are read.
pub use phonenumber::country::Id as Region;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber};
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::validation::{Check, FieldError, Invalid};

// ───────────────────────────── identities ─────────────────────────────

/// A name as the name search compares it: trimmed and lower-cased in every script (SQLite's
/// `LOWER()` knows ASCII alone), so that `Özdemir`, `özdemir` and `ÖZDEMIR` find each other.
pub fn search_name(name: Option<&str>) -> Option<String> {
    name.map(|name| name.trim().to_lowercase())
}

/// What an identity's value is: an address, a number, or a provider's id for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Email,
    Phone,
    Whatsapp,
    Telegram,
    Messenger,
    Instagram,
    Viber,
    Webchat,
    LoyaltyCard,
    External,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 10] = [
        IdentityKind::Email,
        IdentityKind::Phone,
        IdentityKind::Whatsapp,
        IdentityKind::Telegram,
        IdentityKind::Messenger,
        IdentityKind::Instagram,
        IdentityKind::Viber,
        IdentityKind::Webchat,
        IdentityKind::LoyaltyCard,
        IdentityKind::External,
    ];

    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Email => "email",
            IdentityKind::Phone => "phone",
            IdentityKind::Whatsapp => "whatsapp",
            IdentityKind::Telegram => "telegram",
            IdentityKind::Messenger => "messenger",
            IdentityKind::Instagram => "instagram",
            IdentityKind::Viber => "viber",
            IdentityKind::Webchat => "webchat",
            IdentityKind::LoyaltyCard => "loyalty_card",
            IdentityKind::External => "external",
        }
    }

    /// The kind named `text` exactly as [`IdentityKind::as_str`] spells it.
    pub fn parse(text: &str) -> Option<IdentityKind> {
        IdentityKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether messages can be sent over this kind: only those can carry a consent or be the
    /// preferred channel.
    pub const fn is_messaging(self) -> bool {
        !matches!(self, IdentityKind::LoyaltyCard | IdentityKind::External)
    }
}

/// One way of recognising a customer: `{"kind": "email", "value": "ann@example.com"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub kind: IdentityKind,
    pub value: String,
}

impl Identity {
    pub fn new(kind: IdentityKind, value: impl Into<String>) -> Self {
        Identity {
            kind,
            value: value.into(),
        }
    }
}

const MAX_EMAIL: usize = 254;
const MAX_PROVIDER_ID: usize = 200;
const MAX_LOYALTY_CARD: usize = 64;
/// Longer input is no phone number; the cap also bounds the work handed to the parser.
const MAX_PHONE_TEXT: usize = 64;
/// A WhatsApp `wa_id` is the number in international form without `+`; shorter digit strings
/// are more likely local numbers.
const MIN_WA_ID_DIGITS: usize = 8;

/// The canonical form of an identity, the one that is stored and matched.
///
/// Phone numbers are read in `default_region` unless they carry a country code. A WhatsApp
/// identity comes back as kind `phone`, so that it finds the same customer as the number.
pub fn normalize(identity: &Identity, default_region: Region) -> Result<Identity, Invalid> {
    let value = identity.value.as_str();
    let (kind, value) = match identity.kind {
        IdentityKind::Email => (IdentityKind::Email, normalize_email(value)?),
        IdentityKind::Phone => (IdentityKind::Phone, normalize_phone(value, default_region, false)?),
        IdentityKind::Whatsapp => (IdentityKind::Phone, normalize_phone(value, default_region, true)?),
        IdentityKind::LoyaltyCard => (IdentityKind::LoyaltyCard, normalize_loyalty_card(value)?),
        kind @ (IdentityKind::Telegram
        | IdentityKind::Messenger
        | IdentityKind::Instagram
        | IdentityKind::Viber
        | IdentityKind::Webchat
        | IdentityKind::External) => (kind, normalize_provider_id(value)?),
    };
    Ok(Identity { kind, value })
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one("value", "invalid", message)
}

/// Lower-cased as a whole: mailbox names are case-sensitive in theory but never in practice,
/// and treating them so would split one person in two.
fn normalize_email(raw: &str) -> Result<String, Invalid> {
    let email = raw.trim().to_lowercase();
    if email.chars().count() > MAX_EMAIL {
        return Err(invalid(format!("an e-mail address has at most {MAX_EMAIL} characters")));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("an e-mail address has no spaces"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("is not an e-mail address: no @"));
    };
    if local.is_empty() || domain.contains('@') || !is_domain(domain) {
        return Err(invalid("is not an e-mail address such as name@example.com"));
    }
    Ok(email)
}

/// At least two labels, none empty (`example.com`, not `localhost`, `.com` or `a..com`).
fn is_domain(domain: &str) -> bool {
    domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// Provider ids are opaque and case-sensitive: only the surrounding space goes.
fn normalize_provider_id(raw: &str) -> Result<String, Invalid> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(invalid("must not be blank"));
    }
    if id.chars().count() > MAX_PROVIDER_ID {
        return Err(invalid(format!("must be at most {MAX_PROVIDER_ID} characters")));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(id.to_owned())
}

/// Cards are read aloud, typed and scanned: grouping and case must not matter.
fn normalize_loyalty_card(raw: &str) -> Result<String, Invalid> {
    let card: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if card.is_empty() {
        return Err(invalid("must not be blank"));
    }
    if !card.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid("a loyalty card number has only letters and digits"));
    }
    if card.len() > MAX_LOYALTY_CARD {
        return Err(invalid(format!("must be at most {MAX_LOYALTY_CARD} characters")));
    }
    Ok(card)
}

/// How the digits of a phone number were written.
#[derive(Debug, PartialEq, Eq)]
enum Dialled {
    /// With a country code (`+49 …`, or a WhatsApp id): the digits after the `+`.
    International(String),
    /// As dialled inside the default region, possibly with an international call prefix.
    Regional(String),
}

fn normalize_phone(raw: &str, region: Region, whatsapp: bool) -> Result<String, Invalid> {
    let dialled = read_phone_text(raw.trim(), whatsapp)?;
    let number = match dialled {
        Dialled::International(digits) => phonenumber::parse(None, format!("+{digits}")),
        Dialled::Regional(digits) => parse_regional(&digits, region),
    }
    .map_err(|e| invalid(format!("cannot be parsed as a phone number: {e}")))?;
    if !number.is_valid() {
        return Err(invalid("is not a valid phone number"));
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// Keeps the digits and whether a `+` led them. Only punctuation people really write is
/// accepted: letters (vanity numbers, `ext. 12`) would otherwise be read as digits or dropped
/// by the parser, and an extension dropped silently would merge everyone behind a switchboard.
fn read_phone_text(text: &str, whatsapp: bool) -> Result<Dialled, Invalid> {
    if text.chars().count() > MAX_PHONE_TEXT {
        return Err(invalid("is too long to be a phone number"));
    }
    let mut plus = false;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            // `(+49) 151 …` is common; a `+` after a digit is not.
            '+' if !plus && digits.is_empty() => plus = true,
            '-' | '.' | '/' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            _ => {
                return Err(invalid(
                    "cannot be parsed as a phone number: use digits, spaces and + - . / ( )",
                ));
            }
        }
    }
    if digits.is_empty() {
        return Err(invalid("cannot be parsed as a phone number: no digits"));
    }
    if plus || (whatsapp && is_wa_id(text)) {
        Ok(Dialled::International(digits))
    } else {
        Ok(Dialled::Regional(digits))
    }
}

/// A `wa_id` as WhatsApp sends it: bare international digits, never a trunk `0`.
fn is_wa_id(text: &str) -> bool {
    text.len() >= MIN_WA_ID_DIGITS && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0')
}

/// Parses digits written as in `region`.
///
/// phonenumber 0.3 strips the *default region's* national prefix even from a number that
/// names another country (with region US, `011 49 151…` loses the `1` of `151`; with region
/// DE, `0039 06…` loses Italy's significant `0`). So when the number turns out to belong
/// elsewhere, the international call prefix is cut here and the rest read as `+…`, which
/// makes the parser use that country's own rules.
fn parse_regional(digits: &str, region: Region) -> Result<PhoneNumber, phonenumber::ParseError> {
    let number = phonenumber::parse(Some(region), digits)?;
    let home_code = DATABASE.by_id(region.as_ref()).map(|meta| meta.country_code());
    if home_code == Some(number.code().value()) {
        return Ok(number);
    }
    let international = strip_international_prefix(digits, region).unwrap_or(digits);
    phonenumber::parse(None, format!("+{international}"))
}

/// The digits after `region`'s international call prefix (`00` in most of the world, `011`
/// in North America), if they start with one.
fn strip_international_prefix(digits: &str, region: Region) -> Option<&str> {
    let meta = DATABASE.by_id(region.as_ref())?;
    let found = meta.international_prefix()?.find(digits)?;
    (found.start() == 0).then(|| &digits[found.end()..])
}

/// The phone-numbering region for an ISO 3166-1 alpha-2 code (`DE`, `us`), for configuration.
///
/// Only regions the parser has metadata for: it panics when asked to parse in any other.
pub fn parse_region(code: &str) -> Option<Region> {
    let region: Region = code.trim().to_ascii_uppercase().parse().ok()?;
    DATABASE.by_id(region.as_ref()).map(|_| region)
}

// ───────────────────────────── masking ─────────────────────────────

/// A form of the identity that is safe to log: enough to tell two apart while debugging,
/// not enough to contact or recognise the person.
pub fn mask(identity: &Identity) -> String {
    match identity.kind {
        IdentityKind::Email => mask_email(&identity.value),
        IdentityKind::Phone | IdentityKind::Whatsapp => mask_phone(&identity.value),
        _ => mask_tail(&identity.value),
    }
}

/// `j***@example.com`: the first letter and the domain.
fn mask_email(value: &str) -> String {
    match value.trim().rsplit_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// `+49******78`: the country code and the last two digits; a fixed run of stars, so the
/// length is not told either.
fn mask_phone(value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.len() < 7 {
        return "***".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}******{tail}")
}

/// `***89`: the last two characters of an opaque id, when it is long enough to spare them.
fn mask_tail(value: &str) -> String {
    let chars: Vec<char> = value.trim().chars().collect();
    if chars.len() < 6 {
        return "***".to_owned();
    }
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("***{tail}")
}

// ───────────────────────────── consents ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    OptedIn,
    OptedOut,
}

/// A customer's latest word on being contacted over one channel, and where it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub channel: IdentityKind,
    pub status: ConsentStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// Where it was given (`checkout`, `whatsapp_stop`, `pos` …), to show on request.
    pub source: String,
}

// ───────────────────────────── loyalty ─────────────────────────────

/// Minor units in one whole currency unit. Loyalty programmes run in the merchant's home
/// currency; zero- and three-decimal currencies are not supported by these rules yet.
const MINOR_PER_UNIT: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// Spend over the last twelve months, in minor units, that reaches this tier.
    pub min_spend_minor: i64,
}

/// How points are earned, what they are worth, and which tiers spending reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoyaltyProgram {
    /// Points per whole currency unit spent.
    pub points_per_unit: i64,
    /// Minor units one point is worth when redeemed.
    pub point_value_minor: i64,
    /// In ascending order of `min_spend_minor`, the first at 0.
    pub tiers: Vec<Tier>,
}

impl Default for LoyaltyProgram {
    fn default() -> Self {
        let tier = |name: &str, min_spend_minor| Tier {
            name: name.to_owned(),
            min_spend_minor,
        };
        LoyaltyProgram {
            points_per_unit: 1,
            point_value_minor: 1,
            tiers: vec![tier("Bronze", 0), tier("Silver", 50_000), tier("Gold", 200_000)],
        }
    }
}

/// Returned by [`LoyaltyProgram::tier`] only for a programme without tiers.
static NO_TIER: Tier = Tier {
    name: String::new(),
    min_spend_minor: 0,
};

impl LoyaltyProgram {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        if self.points_per_unit < 0 {
            check.fail("points_per_unit", "out_of_range", "must not be negative");
        }
        if self.point_value_minor < 0 {
            check.fail("point_value_minor", "out_of_range", "must not be negative");
        }
        self.check_tiers(&mut check);
        check.done()
    }

    /// Every spend must land in exactly one tier: a ladder from 0 upwards.
    fn check_tiers(&self, check: &mut Check) {
        if self.tiers.is_empty() {
            check.fail("tiers", "required", "a programme needs at least one tier");
        }
        let mut names = std::collections::HashSet::new();
        let mut previous: Option<i64> = None;
        for (i, tier) in self.tiers.iter().enumerate() {
            let field = format!("tiers[{i}]");
            check.text(&format!("{field}.name"), &tier.name, 100);
            if !names.insert(tier.name.trim()) {
                check.fail(format!("{field}.name"), "duplicate", "is used twice");
            }
            let min = tier.min_spend_minor;
            let in_order = match previous {
                None => min == 0,
                Some(before) => min > before,
            };
            if !in_order {
                let message = if i == 0 {
                    "the first tier starts at 0"
                } else {
                    "must be above the tier before"
                };
                check.fail(format!("{field}.min_spend_minor"), "out_of_range", message);
            }
            previous = Some(min);
        }
    }

    /// Points for a payment: whole currency units only, so cents never add up to a point.
    pub fn points_earned(&self, paid_minor: i64) -> i64 {
        if paid_minor <= 0 || self.points_per_unit <= 0 {
            return 0;
        }
        (paid_minor / MINOR_PER_UNIT).saturating_mul(self.points_per_unit)
    }

    /// What `points` take off an order, in minor units.
    pub fn redemption_value(&self, points: i64) -> i64 {
        points.max(0).saturating_mul(self.point_value_minor.max(0))
    }

    /// Points to take back for a refund: what the refunded amount earned, rounded the same
    /// way, so a full refund takes back exactly what the order earned.
    pub fn points_for_return(&self, refunded_minor: i64) -> i64 {
        self.points_earned(refunded_minor)
    }

    /// The highest tier whose threshold the spend reaches; the lowest tier below all of them.
    pub fn tier(&self, spend_12m_minor: i64) -> &Tier {
        self.tiers
            .iter()
            .filter(|tier| tier.min_spend_minor <= spend_12m_minor)
            .max_by_key(|tier| tier.min_spend_minor)
            .or_else(|| self.tiers.iter().min_by_key(|tier| tier.min_spend_minor))
            .unwrap_or(&NO_TIER)
    }

    /// The most points an order can take: no more than the balance, and no more than pays
    /// for the whole order (a redemption never turns into change).
    pub fn max_redeemable(&self, balance: i64, order_total_minor: i64) -> i64 {
        if balance <= 0 || order_total_minor <= 0 || self.point_value_minor <= 0 {
            return 0;
        }
        balance.min(order_total_minor / self.point_value_minor)
    }
}

// ───────────────────────────── merges ─────────────────────────────

/// Whether `absorbed_id` may be merged into `survivor_id`. The absorbed customer's own merge
/// record is passed in: once merged it is only a pointer, and absorbing it again would move
/// nothing and record a second, false merge.
pub fn check_merge(
    survivor_id: &str,
    absorbed_id: &str,
    absorbed_already_merged_into: Option<&str>,
) -> Result<(), Invalid> {
    if absorbed_id.trim().is_empty() {
        return Err(Invalid::one(
            "customer_id",
            "required",
            "names the customer to merge in",
        ));
    }
    if survivor_id == absorbed_id {
        return Err(Invalid::one(
            "customer_id",
            "invalid",
            "a customer cannot be merged into itself",
        ));
    }
    if let Some(into) = absorbed_already_merged_into {
        return Err(Invalid::one(
            "customer_id",
            "already_merged",
            format!("was already merged into {into}"),
        ));
    }
    Ok(())
}

// ───────────────────────────── profiles ─────────────────────────────

const MAX_NAME: usize = 200;
const MAX_TAG: usize = 50;
const MAX_TAGS: usize = 50;
const MAX_SOURCE: usize = 100;
const MAX_REFERENCE: usize = 200;
/// More than this is not one person but a mistake (or an attempt to claim everyone).
const MAX_IDENTITIES: usize = 50;

/// A consent as a client gives it; `at` may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentDraft {
    pub channel: IdentityKind,
    pub status: ConsentStatus,
    /// When it was given; absent means now, or when the same word was recorded before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Where it was given (`checkout`, `whatsapp_stop`, `pos` …).
    pub source: String,
}

impl ConsentDraft {
    /// The consent to store. An undated one keeps the date of the same word already `held`,
    /// so that re-sending a profile does not make an old consent look freshly given.
    pub fn dated(&self, held: &[Consent], now: Timestamp) -> Consent {
        let same = held
            .iter()
            .find(|c| c.channel == self.channel && c.status == self.status);
        Consent {
            channel: self.channel,
            status: self.status,
            at: self.at.or(same.map(|c| c.at)).unwrap_or(now),
            source: self.source.trim().to_owned(),
        }
    }
}

impl From<&Consent> for ConsentDraft {
    fn from(consent: &Consent) -> Self {
        ConsentDraft {
            channel: consent.channel,
            status: consent.status,
            at: Some(consent.at),
            source: consent.source.clone(),
        }
    }
}

/// What a client sends to create a customer, and what a merge patch changes. `identities`,
/// `consents` and `tags`, when given, are the whole new lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// At most one per messaging channel.
    #[serde(default)]
    pub consents: Vec<ConsentDraft>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_channel: Option<IdentityKind>,
}

impl CustomerDraft {
    /// Checks the draft; answers its identities in canonical form, each once.
    pub fn validate(&self, region: Region) -> Result<Vec<Identity>, Invalid> {
        let mut check = Check::new();
        if let Some(name) = &self.name {
            check.text("name", name, MAX_NAME);
        }
        let identities = normalize_into("identities", &self.identities, region, &mut check);
        self.check_consents(&mut check);
        check_tags(&self.tags, &mut check);
        if let Some(kind) = self.preferred_channel
            && !kind.is_messaging()
        {
            check.fail(
                "preferred_channel",
                "invalid",
                "must be a channel messages are sent over",
            );
        }
        check.done().map(|()| identities)
    }

    fn check_consents(&self, check: &mut Check) {
        let mut channels = HashSet::new();
        for (i, consent) in self.consents.iter().enumerate() {
            let field = format!("consents[{i}]");
            if !consent.channel.is_messaging() {
                check.fail(
                    format!("{field}.channel"),
                    "invalid",
                    "must be a channel messages are sent over",
                );
            }
            if !channels.insert(consent.channel) {
                check.fail(format!("{field}.channel"), "duplicate", "has a consent already");
            }
            check.text(&format!("{field}.source"), &consent.source, MAX_SOURCE);
        }
    }

    /// The tags with surrounding space trimmed, as they are stored.
    pub fn trimmed_tags(&self) -> Vec<String> {
        self.tags.iter().map(|tag| tag.trim().to_owned()).collect()
    }
}

fn check_tags(tags: &[String], check: &mut Check) {
    if tags.len() > MAX_TAGS {
        check.fail("tags", "too_long", format!("at most {MAX_TAGS} tags"));
    }
    let mut seen = HashSet::new();
    for (i, tag) in tags.iter().enumerate() {
        check.text(&format!("tags[{i}]"), tag, MAX_TAG);
        if !seen.insert(tag.trim()) {
            check.fail(format!("tags[{i}]"), "duplicate", "is given twice");
        }
    }
}

/// The survivor's tags, then those of the absorbed customer it lacks, as many as a profile holds.
pub fn merge_tags(survivor: &[String], absorbed: &[String]) -> Vec<String> {
    let mut tags = survivor.to_vec();
    for tag in absorbed {
        if tags.len() >= MAX_TAGS {
            break;
        }
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

/// The identities in canonical form, each once (a number given as phone and as WhatsApp is
/// one identity); errors name `identities[i].value`.
pub fn normalize_identities(identities: &[Identity], region: Region) -> Result<Vec<Identity>, Invalid> {
    let mut check = Check::new();
    if identities.is_empty() {
        check.fail("identities", "required", "name at least one identity");
    }
    let canonical = normalize_into("identities", identities, region, &mut check);
    check.done().map(|()| canonical)
}

fn normalize_into(field: &str, identities: &[Identity], region: Region, check: &mut Check) -> Vec<Identity> {
    if identities.len() > MAX_IDENTITIES {
        check.fail(field, "too_long", format!("at most {MAX_IDENTITIES} identities"));
    }
    let mut canonical: Vec<Identity> = Vec::new();
    for (i, identity) in identities.iter().enumerate() {
        match normalize(identity, region) {
            Ok(identity) if canonical.contains(&identity) => {}
            Ok(identity) => canonical.push(identity),
            Err(Invalid(errors)) => {
                for FieldError {
                    field: inner,
                    code,
                    message,
                } in errors
                {
                    check.fail(format!("{field}[{i}].{inner}"), &code, message);
                }
            }
        }
    }
    canonical
}

/// A customer: the person behind every identity, on every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    /// In canonical form: e-mail lower-cased, phone numbers (and WhatsApp ids) as E.164 `phone`;
    /// in the order they were attached, those attached together by kind.
    pub identities: Vec<Identity>,
    pub consents: Vec<Consent>,
    pub tags: Vec<String>,
    pub preferred_channel: Option<IdentityKind>,
    /// Set once this customer was merged into another one, which now holds everything: follow it.
    pub merged_into: Option<String>,
    /// Set once the personal data was erased; the id stays so that order totals still add up.
    pub erased_at: Option<Timestamp>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Customer {
    pub fn to_draft(&self) -> CustomerDraft {
        CustomerDraft {
            name: self.name.clone(),
            identities: self.identities.clone(),
            consents: self.consents.iter().map(ConsentDraft::from).collect(),
            tags: self.tags.clone(),
            preferred_channel: self.preferred_channel,
        }
    }
}

// ───────────────────────────── loyalty records ─────────────────────────────

/// Why a customer's points changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LoyaltyReason {
    /// Earned by an order from any channel.
    OrderCompleted,
    /// Taken back for a return.
    OrderReturned,
    /// Spent as a discount at checkout.
    Redeemed,
    /// Redeemed points given back when their order was cancelled.
    OrderCancelled,
    /// The redeemed points' share of a return, given back as points (the rest is refunded).
    RedemptionReturned,
    Goodwill,
    Correction,
    Expired,
}

/// Larger changes are typing mistakes; the cap also keeps balances far from overflowing.
const MAX_POINTS_CHANGE: i64 = 1_000_000_000;

/// A manual change of a customer's points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoyaltyAdjustment {
    /// Points to add (positive) or take (negative).
    pub points: i64,
    /// `goodwill`, `correction` or `expired`: the other reasons are the orders' own.
    pub reason: LoyaltyReason,
    /// The merchant's own reference (a ticket, a receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl LoyaltyAdjustment {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        if self.points == 0 {
            check.fail("points", "invalid", "must not be 0");
        } else if !(-MAX_POINTS_CHANGE..=MAX_POINTS_CHANGE).contains(&self.points) {
            check.fail(
                "points",
                "out_of_range",
                format!("must be between -{MAX_POINTS_CHANGE} and {MAX_POINTS_CHANGE}"),
            );
        }
        if let Some(reference) = &self.reference {
            check.text("reference", reference, MAX_REFERENCE);
        }
        if !self.reason.is_manual() {
            check.fail(
                "reason",
                "invalid",
                "orders earn, spend and give back points themselves: use goodwill, correction or expired",
            );
        }
        check.done()
    }
}

impl LoyaltyReason {
    /// Whether people may give this reason; the others are the orders' own.
    pub fn is_manual(self) -> bool {
        matches!(
            self,
            LoyaltyReason::Goodwill | LoyaltyReason::Correction | LoyaltyReason::Expired
        )
    }
}

/// The error for a change that would take the balance below zero.
pub fn insufficient_points(balance: i64, points: i64) -> Invalid {
    Invalid::one(
        "points",
        "insufficient_points",
        format!("the balance is {balance} points; {points} would take it below 0"),
    )
}

/// Where a customer stands in the loyalty programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoyaltyStanding {
    /// Points to redeem: the sum of the ledger.
    pub balance: i64,
    /// Spend over the last twelve months, in minor units of the programme's currency.
    pub spend_12m_minor: i64,
    pub tier: Tier,
}

/// One row of the points ledger; a customer's balance is the sum of their movements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoyaltyMovement {
    pub id: String,
    pub customer_id: String,
    pub points: i64,
    pub reason: LoyaltyReason,
    pub reference: Option<String>,
    /// The order that earned, returned or redeemed the points.
    pub order_id: Option<String>,
    pub at: Timestamp,
}

// ───────────────────────────── timeline, merges, export ─────────────────────────────

/// Something that happened with a customer on any channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub id: String,
    /// What happened, named like the event (`order.placed`, `loyalty.points_changed` …).
    #[serde(rename = "type")]
    pub kind: String,
    pub at: Timestamp,
    /// The resource it is about (an order, a conversation …).
    pub reference: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub summary: serde_json::Value,
}

/// A merge as recorded: who merged which customer into which, and how much moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerMerge {
    pub id: String,
    pub survivor_id: String,
    pub absorbed_id: String,
    /// Rows moved to the survivor, by what they are (`identities`, `loyalty_points` …).
    pub moved: BTreeMap<String, i64>,
    /// The API key that merged them.
    pub by: String,
    pub at: Timestamp,
}

/// Two customers whom identities tied together, kept for a person to decide: they are never
/// merged automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeSuggestion {
    pub customer_ids: Vec<String>,
    pub suggested_at: Timestamp,
}

/// Everything held about one person.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerExport {
    pub customer: Customer,
    pub loyalty_balance: i64,
    pub loyalty_movements: Vec<LoyaltyMovement>,
    pub timeline: Vec<TimelineEntry>,
    pub merges: Vec<CustomerMerge>,
    pub merge_suggestions: Vec<MergeSuggestion>,
    pub exported_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(kind: IdentityKind, value: &str) -> Result<Identity, Invalid> {
        normalize(&Identity::new(kind, value), Region::DE)
    }

    fn phone(value: &str, region: Region) -> Result<String, Invalid> {
        normalize(&Identity::new(IdentityKind::Phone, value), region).map(|i| i.value)
    }

    fn whatsapp(value: &str, region: Region) -> Result<String, Invalid> {
        let identity = normalize(&Identity::new(IdentityKind::Whatsapp, value), region)?;
        assert_eq!(identity.kind, IdentityKind::Phone);
        Ok(identity.value)
    }

    fn message(result: Result<Identity, Invalid>) -> String {
        let Invalid(errors) = result.unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code.as_str()),
            ("value", "invalid")
        );
        errors[0].message.clone()
    }

    #[test]
    fn kinds_round_trip_through_their_names_and_serde() {
        for kind in IdentityKind::ALL {
            assert_eq!(IdentityKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(IdentityKind::parse("Email"), None);
        assert_eq!(IdentityKind::parse("sms"), None);
    }

    #[test]
    fn identity_json_refuses_unknown_fields() {
        let identity: Identity = serde_json::from_str(r#"{"kind":"loyalty_card","value":"a"}"#).unwrap();
        assert_eq!(identity, Identity::new(IdentityKind::LoyaltyCard, "a"));
        assert!(serde_json::from_str::<Identity>(r#"{"kind":"email","value":"a","x":1}"#).is_err());
    }

    #[test]
    fn german_phone_formats_meet() {
        for text in [
            "+49 151 1234 5678",
            "0151 12345678",
            "004915112345678",
            "(0151) 1234-5678",
            "+49 (0) 151 1234 5678",
            "(+49) 151/1234.5678",
            "4915112345678",
            "\u{a0}+49\u{a0}151 12345678 ",
        ] {
            assert_eq!(phone(text, Region::DE).as_deref(), Ok("+4915112345678"), "{text}");
        }
    }

    #[test]
    fn whatsapp_ids_become_phone_identities() {
        assert_eq!(whatsapp("4915112345678", Region::DE).as_deref(), Ok("+4915112345678"));
        // The wa_id is international whatever the merchant's region.
        assert_eq!(whatsapp("4915112345678", Region::US).as_deref(), Ok("+4915112345678"));
        assert_eq!(whatsapp("16502530000", Region::DE).as_deref(), Ok("+16502530000"));
        // Written like a local number, it is read as one.
        assert_eq!(whatsapp("0151 12345678", Region::DE).as_deref(), Ok("+4915112345678"));
        assert_eq!(whatsapp("015112345678", Region::DE).as_deref(), Ok("+4915112345678"));
    }

    #[test]
    fn foreign_numbers_keep_their_digits_whatever_the_default_region() {
        // The parser alone gets these wrong: it strips the default region's trunk prefix.
        assert_eq!(phone("+49 151 1234 5678", Region::US).as_deref(), Ok("+4915112345678"));
        assert_eq!(
            phone("011 49 151 1234 5678", Region::US).as_deref(),
            Ok("+4915112345678")
        );
        assert_eq!(phone("+39 06 698 81", Region::DE).as_deref(), Ok("+390669881"));
        assert_eq!(phone("0039 06 698 81", Region::DE).as_deref(), Ok("+390669881"));
        assert_eq!(phone("+7 912 345 67 89", Region::RU).as_deref(), Ok("+79123456789"));
        assert_eq!(
            phone("810 49 151 12345678", Region::RU).as_deref(),
            Ok("+4915112345678")
        );
    }

    #[test]
    fn every_regions_example_numbers_read_the_same_from_anywhere() {
        let homes = [Region::DE, Region::US, Region::IT, Region::RU, Region::GB, Region::BR];
        let mut checked = 0;
        for meta in DATABASE.iter() {
            let descriptors = meta.descriptors();
            for example in [descriptors.mobile(), descriptors.fixed_line()]
                .into_iter()
                .flatten()
                .filter_map(|d| d.example())
            {
                let text = format!("+{} {example}", meta.country_code());
                let expected = format!("+{}{example}", meta.country_code());
                for home in homes {
                    assert_eq!(
                        phone(&text, home).as_deref(),
                        Ok(expected.as_str()),
                        "{text} in {home:?}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 400, "{checked}");
    }

    #[test]
    fn unparseable_and_invalid_phones_say_so() {
        for text in [
            "",
            "   ",
            "abc",
            "+",
            "1-800-FLOWERS",
            "+49 151 12345678 ext. 12",
            "49+151",
        ] {
            let msg = message(norm(IdentityKind::Phone, text));
            assert!(msg.contains("cannot be parsed as a phone number"), "{text}: {msg}");
        }
        for text in ["+49 000", "12"] {
            assert!(norm(IdentityKind::Phone, text).is_err(), "{text}");
        }
        let msg = message(norm(IdentityKind::Phone, "+1 555 0000000"));
        assert!(msg.contains("not a valid phone number"), "{msg}");
        assert!(norm(IdentityKind::Phone, &"1".repeat(65)).is_err());
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let identity = norm(IdentityKind::Email, "  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(identity, Identity::new(IdentityKind::Email, "jane.doe@example.com"));
    }

    #[test]
    fn malformed_emails_are_refused() {
        let too_long = format!("{}@example.com", "a".repeat(243));
        for text in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "jane@@example.com",
            "ja ne@example.com",
            "jane@example..com",
            "jane@.com",
            "jane@example.com.",
            "a@b@example.com",
            &too_long,
        ] {
            assert!(norm(IdentityKind::Email, text).is_err(), "{text}");
        }
        let longest = format!("{}@example.com", "a".repeat(242));
        assert!(norm(IdentityKind::Email, &longest).is_ok());
    }

    #[test]
    fn provider_ids_keep_their_case() {
        let identity = norm(IdentityKind::Viber, " 01234567890A= ").unwrap();
        assert_eq!(identity, Identity::new(IdentityKind::Viber, "01234567890A="));
        for kind in [IdentityKind::Telegram, IdentityKind::Messenger, IdentityKind::External] {
            assert_eq!(norm(kind, "AbC").unwrap().value, "AbC");
            assert!(norm(kind, "  ").is_err());
            assert!(norm(kind, &"x".repeat(201)).is_err());
            assert!(norm(kind, &"x".repeat(200)).is_ok());
            assert!(norm(kind, "a\u{0}b").is_err());
        }
    }

    #[test]
    fn loyalty_cards_ignore_grouping_and_case() {
        assert_eq!(
            norm(IdentityKind::LoyaltyCard, " ab-12 34 cd ").unwrap().value,
            "AB1234CD"
        );
        for text in ["", " - ", "AB/12", "ÄB12"] {
            assert!(norm(IdentityKind::LoyaltyCard, text).is_err(), "{text}");
        }
    }

    #[test]
    fn regions_parse_from_configuration() {
        assert_eq!(parse_region("DE"), Some(Region::DE));
        assert_eq!(parse_region(" us "), Some(Region::US));
        assert_eq!(parse_region("XX"), None);
        assert_eq!(parse_region("GER"), None);
        assert_eq!(parse_region(""), None);
    }

    #[test]
    fn masks_hide_personal_data() {
        let masked = |kind, value: &str| mask(&Identity::new(kind, value));
        assert_eq!(masked(IdentityKind::Email, "jane@example.com"), "j***@example.com");
        assert_eq!(masked(IdentityKind::Email, "not-an-address"), "***");
        assert_eq!(masked(IdentityKind::Phone, "+4915112345678"), "+49******78");
        assert_eq!(masked(IdentityKind::Whatsapp, "4915112345678"), "491******78");
        assert_eq!(masked(IdentityKind::Phone, "+4912"), "***");
        assert_eq!(masked(IdentityKind::Telegram, "123456789"), "***89");
        assert_eq!(masked(IdentityKind::Webchat, "abc"), "***");
        assert_eq!(masked(IdentityKind::Instagram, "ééééééé"), "***éé");
    }

    #[test]
    fn consents_serialise_in_snake_case() {
        let consent = Consent {
            channel: IdentityKind::Whatsapp,
            status: ConsentStatus::OptedOut,
            at: Timestamp(1_764_000_000_000),
            source: "whatsapp_stop".into(),
        };
        let json = serde_json::to_value(&consent).unwrap();
        assert_eq!(json["status"], "opted_out");
        assert_eq!(json["at"], "2025-11-24T16:00:00Z");
        assert_eq!(serde_json::from_value::<Consent>(json).unwrap(), consent);
    }

    #[test]
    fn default_programme_earns_a_point_per_unit() {
        let program = LoyaltyProgram::default();
        assert!(program.validate().is_ok());
        assert_eq!(program.points_earned(1999), 19);
        assert_eq!(program.points_earned(99), 0);
        assert_eq!(program.points_earned(-500), 0);
        assert_eq!(program.redemption_value(250), 250);
        assert_eq!(program.redemption_value(-3), 0);
        assert_eq!(program.points_for_return(1999), 19);
        assert_eq!(program.points_for_return(-1), 0);
    }

    #[test]
    fn tiers_are_reached_at_their_threshold() {
        let program = LoyaltyProgram::default();
        assert_eq!(program.tier(-1).name, "Bronze");
        assert_eq!(program.tier(49_999).name, "Bronze");
        assert_eq!(program.tier(50_000).name, "Silver");
        assert_eq!(program.tier(i64::MAX).name, "Gold");
        let unsorted = LoyaltyProgram {
            tiers: vec![
                Tier {
                    name: "Gold".into(),
                    min_spend_minor: 900,
                },
                Tier {
                    name: "Base".into(),
                    min_spend_minor: 100,
                },
            ],
            ..LoyaltyProgram::default()
        };
        assert_eq!(unsorted.tier(0).name, "Base");
        assert_eq!(unsorted.tier(950).name, "Gold");
        let none = LoyaltyProgram {
            tiers: vec![],
            ..LoyaltyProgram::default()
        };
        assert_eq!(none.tier(10).name, "");
    }

    #[test]
    fn programme_validation_reports_every_field() {
        let program = LoyaltyProgram {
            points_per_unit: -1,
            point_value_minor: -1,
            tiers: vec![
                Tier {
                    name: "A".into(),
                    min_spend_minor: 10,
                },
                Tier {
                    name: "A".into(),
                    min_spend_minor: 10,
                },
                Tier {
                    name: " ".into(),
                    min_spend_minor: 20,
                },
            ],
        };
        let Invalid(errors) = program.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "points_per_unit",
                "point_value_minor",
                "tiers[0].min_spend_minor",
                "tiers[1].name",
                "tiers[1].min_spend_minor",
                "tiers[2].name",
            ]
        );
        let empty = LoyaltyProgram {
            tiers: vec![],
            ..LoyaltyProgram::default()
        };
        assert_eq!(empty.validate().unwrap_err().0[0].field, "tiers");
    }

    #[test]
    fn redemption_is_capped_by_balance_and_order() {
        let program = LoyaltyProgram {
            point_value_minor: 5,
            ..LoyaltyProgram::default()
        };
        assert_eq!(program.max_redeemable(100, 10_000), 100);
        assert_eq!(program.max_redeemable(10_000, 999), 199);
        assert_eq!(program.max_redeemable(-5, 999), 0);
        assert_eq!(program.max_redeemable(5, 0), 0);
        let worthless = LoyaltyProgram {
            point_value_minor: 0,
            ..LoyaltyProgram::default()
        };
        assert_eq!(worthless.max_redeemable(100, 100), 0);
    }

    #[test]
    fn merges_need_two_live_customers() {
        assert_eq!(check_merge("cus_a", "cus_b", None), Ok(()));
        let field_and_code = |result: Result<(), Invalid>| {
            let Invalid(errors) = result.unwrap_err();
            (errors[0].field.clone(), errors[0].code.clone())
        };
        assert_eq!(
            field_and_code(check_merge("cus_a", "cus_a", None)),
            ("customer_id".into(), "invalid".into())
        );
        assert_eq!(
            field_and_code(check_merge("cus_a", "cus_b", Some("cus_c"))),
            ("customer_id".into(), "already_merged".into())
        );
        assert_eq!(
            field_and_code(check_merge("cus_a", " ", None)),
            ("customer_id".into(), "required".into())
        );
    }

    #[test]
    fn drafts_keep_each_identity_once_in_canonical_form() {
        let draft = CustomerDraft {
            identities: vec![
                Identity::new(IdentityKind::Phone, "0151 12345678"),
                Identity::new(IdentityKind::Whatsapp, "4915112345678"),
                Identity::new(IdentityKind::Email, " Jane@Example.com"),
            ],
            ..CustomerDraft::default()
        };
        let identities = draft.validate(Region::DE).unwrap();
        assert_eq!(
            identities,
            [
                Identity::new(IdentityKind::Phone, "+4915112345678"),
                Identity::new(IdentityKind::Email, "jane@example.com"),
            ]
        );
    }

    #[test]
    fn drafts_report_every_bad_field() {
        let consent = |channel| ConsentDraft {
            channel,
            status: ConsentStatus::OptedIn,
            at: None,
            source: "checkout".into(),
        };
        let draft = CustomerDraft {
            name: Some(" ".into()),
            identities: vec![
                Identity::new(IdentityKind::Email, "ok@example.com"),
                Identity::new(IdentityKind::Phone, "call me"),
            ],
            consents: vec![
                consent(IdentityKind::Email),
                consent(IdentityKind::Email),
                consent(IdentityKind::LoyaltyCard),
            ],
            tags: vec!["vip".into(), " vip ".into()],
            preferred_channel: Some(IdentityKind::External),
        };
        let Invalid(errors) = draft.validate(Region::DE).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("name", "required"),
                ("identities[1].value", "invalid"),
                ("consents[1].channel", "duplicate"),
                ("consents[2].channel", "invalid"),
                ("tags[1]", "duplicate"),
                ("preferred_channel", "invalid"),
            ]
        );
        assert_eq!(normalize_identities(&[], Region::DE).unwrap_err().0[0].code, "required");
    }

    #[test]
    fn undated_consents_keep_the_date_of_the_same_word() {
        let held = [Consent {
            channel: IdentityKind::Email,
            status: ConsentStatus::OptedIn,
            at: Timestamp(1000),
            source: "checkout".into(),
        }];
        let draft = |status| ConsentDraft {
            channel: IdentityKind::Email,
            status,
            at: None,
            source: " pos ".into(),
        };
        let now = Timestamp(5000);
        assert_eq!(draft(ConsentStatus::OptedIn).dated(&held, now).at, Timestamp(1000));
        let changed = draft(ConsentStatus::OptedOut).dated(&held, now);
        assert_eq!((changed.at, changed.source.as_str()), (now, "pos"));
        let dated = ConsentDraft {
            at: Some(Timestamp(7)),
            ..draft(ConsentStatus::OptedIn)
        };
        assert_eq!(dated.dated(&held, now).at, Timestamp(7));
    }

    #[test]
    fn merged_tags_keep_the_survivors_first_and_fit_a_profile() {
        let tags = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_tags(&tags(&["vip", "web"]), &tags(&["web", "pos"])),
            tags(&["vip", "web", "pos"])
        );
        let many: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(merge_tags(&many, &tags(&["extra"])).len(), MAX_TAGS);
    }

    #[test]
    fn adjustments_change_something() {
        let adjustment = |points| LoyaltyAdjustment {
            points,
            reason: LoyaltyReason::Goodwill,
            reference: None,
        };
        assert!(adjustment(5).validate().is_ok());
        assert!(adjustment(-5).validate().is_ok());
        assert_eq!(adjustment(0).validate().unwrap_err().0[0].field, "points");
        assert_eq!(adjustment(i64::MIN).validate().unwrap_err().0[0].code, "out_of_range");
        assert_eq!(insufficient_points(3, -5).0[0].code, "insufficient_points");
    }

    // ── properties ──

    const MOBILE_PREFIXES: [&str; 6] = ["151", "152", "160", "170", "176", "179"];
    const HOMES: [Region; 10] = [
        Region::DE,
        Region::US,
        Region::GB,
        Region::FR,
        Region::IT,
        Region::RU,
        Region::IN,
        Region::BR,
        Region::AU,
        Region::JP,
    ];

    /// `digits` with `sep` after every `group` digits.
    fn grouped(digits: &str, sep: &str, group: usize) -> String {
        let chars: Vec<char> = digits.chars().collect();
        chars
            .chunks(group)
            .map(|chunk| chunk.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(sep)
    }

    fn separator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "-", ".", "/", " - "])
    }

    /// One German mobile number written in one of the ways people and providers write it,
    /// as (kind, text, whether it only reads right with region DE).
    fn german_mobile_variant(
        prefix: &str,
        rest: &str,
        variant: usize,
        sep: &str,
        group: usize,
    ) -> (IdentityKind, String, bool) {
        let rest = grouped(rest, sep, group);
        let phone = IdentityKind::Phone;
        match variant {
            0 => (phone, format!("+49{sep}{prefix}{sep}{rest}"), false),
            1 => (phone, format!("0{prefix}{sep}{rest}"), true),
            2 => (phone, format!("(0{prefix}){sep}{rest}"), true),
            3 => (phone, format!("0049{sep}{prefix}{sep}{rest}"), true),
            4 => (phone, format!("+49 (0){prefix}{sep}{rest}"), false),
            5 => (phone, format!("(+49) {prefix}{sep}{rest}"), false),
            6 => (phone, format!("{prefix}{sep}{rest}"), true),
            7 => (
                IdentityKind::Whatsapp,
                format!("49{prefix}{}", rest.replace(sep, "")),
                false,
            ),
            8 => (IdentityKind::Whatsapp, format!("+49{sep}{prefix}{sep}{rest}"), false),
            _ => (IdentityKind::Whatsapp, format!("0{prefix}{sep}{rest}"), true),
        }
    }

    /// A number from one of three blocks where every ending of the given length is valid,
    /// written some way, as (kind, text, its E.164 form). Italy's keeps its leading 0 after the
    /// country code, which a careless parse would strip.
    fn written_number(
        (country, rest, variant, sep, group): &(usize, String, usize, &str, usize),
    ) -> (IdentityKind, String, String) {
        match country {
            0 => {
                let (kind, text, _) = german_mobile_variant("151", rest, *variant, sep, *group);
                (kind, text, format!("+49151{rest}"))
            }
            1 => {
                let rest = &rest[..7];
                let text = format!("+33 61{sep}{}", grouped(rest, sep, *group));
                (IdentityKind::Phone, text, format!("+3361{rest}"))
            }
            _ => {
                let text = format!("0039 06{sep}{}", grouped(rest, sep, *group));
                (IdentityKind::Phone, text, format!("+3906{rest}"))
            }
        }
    }

    proptest! {
        #[test]
        fn phone_formatting_variants_meet(
            prefix in prop::sample::select(MOBILE_PREFIXES.to_vec()),
            rest in "[0-9]{8}",
            variant in 0usize..10,
            sep in separator(),
            group in 1usize..=8,
            home in prop::sample::select(HOMES.to_vec()),
        ) {
            let (kind, text, regional) = german_mobile_variant(prefix, &rest, variant, sep, group);
            let region = if regional { Region::DE } else { home };
            let identity = normalize(&Identity::new(kind, text.as_str()), region);
            prop_assert_eq!(identity, Ok(Identity::new(IdentityKind::Phone, format!("+49{prefix}{rest}"))), "{}", text);
        }

        #[test]
        fn different_numbers_never_meet(
            a in (0usize..3, "[0-9]{8}", 0usize..10, separator(), 1usize..=8),
            b in (0usize..3, "[0-9]{8}", 0usize..10, separator(), 1usize..=8),
        ) {
            let na = written_number(&a);
            let nb = written_number(&b);
            let read = |(kind, text, _): &(IdentityKind, String, String)| {
                normalize(&Identity::new(*kind, text.as_str()), Region::DE).map(|i| i.value)
            };
            prop_assert_eq!(read(&na), Ok(na.2.clone()), "{}", na.1);
            prop_assert_eq!(read(&nb), Ok(nb.2.clone()), "{}", nb.1);
            prop_assert_eq!(read(&na) == read(&nb), na.2 == nb.2, "{} vs {}", na.1, nb.1);
        }

        #[test]
        fn email_variants_meet(
            local in "[a-z0-9._%+-]{1,20}",
            domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}",
            mask_bits in prop::collection::vec(any::<bool>(), 48),
            pad_left in "[ \t]{0,3}",
            pad_right in "[ \t\n]{0,3}",
        ) {
            let canonical = format!("{local}@{domain}");
            let cased: String = canonical
                .chars()
                .zip(mask_bits.iter().cycle())
                .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c })
                .collect();
            let written = format!("{pad_left}{cased}{pad_right}");
            let identity = norm(IdentityKind::Email, &written);
            prop_assert_eq!(identity, Ok(Identity::new(IdentityKind::Email, canonical)));
        }

        #[test]
        fn normalising_never_panics_and_is_idempotent(
            kind in prop::sample::select(IdentityKind::ALL.to_vec()),
            text in prop_oneof!["\\PC{0,40}", "[0-9 +()./-]{0,30}"],
            home in prop::sample::select(HOMES.to_vec()),
        ) {
            if let Ok(once) = normalize(&Identity::new(kind, text.as_str()), home) {
                let twice = normalize(&once, home);
                prop_assert_eq!(twice, Ok(once.clone()));
                // A stored phone is E.164 and reads the same from any region.
                if once.kind == IdentityKind::Phone {
                    prop_assert_eq!(normalize(&once, Region::US), Ok(once.clone()));
                }
            }
            let _ = mask(&Identity::new(kind, text));
        }

        #[test]
        fn points_earned_is_monotonic_and_never_negative(
            points_per_unit in -5i64..1000,
            a in any::<i64>(),
            b in any::<i64>(),
        ) {
            let program = LoyaltyProgram { points_per_unit, ..LoyaltyProgram::default() };
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(program.points_earned(low) >= 0);
            prop_assert!(program.points_earned(low) <= program.points_earned(high));
            prop_assert_eq!(program.points_for_return(high), program.points_earned(high));
        }

        #[test]
        fn redemption_never_exceeds_balance_or_order(
            point_value_minor in -5i64..10_000,
            balance in any::<i64>(),
            order_total in any::<i64>(),
        ) {
            let program = LoyaltyProgram { point_value_minor, ..LoyaltyProgram::default() };
            let points = program.max_redeemable(balance, order_total);
            prop_assert!(points >= 0);
            prop_assert!(points <= balance.max(0));
            prop_assert!(program.redemption_value(points) <= order_total.max(0));
            // And it is the most: one more point would break a cap.
            if points < balance && point_value_minor > 0 && order_total > 0 {
                prop_assert!(program.redemption_value(points + 1) > order_total);
            }
        }

        #[test]
        fn tier_rises_with_spend(a in any::<i64>(), b in any::<i64>()) {
            let program = LoyaltyProgram::default();
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(program.tier(low).min_spend_minor <= program.tier(high).min_spend_minor);
        }
    }
}
