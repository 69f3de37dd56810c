//! Automatic answers: the merchant's frequent questions matched against what a customer
//! writes, and "where is my order" answered from the customer's latest order.
//!
//! Matching is BM25 over normalised tokens (lower case, no punctuation, no stop words, crude
//! suffix stemming). A match only counts when its score comes close enough to the best score
//! the message could get at all: a bot that answers the wrong question is worse than one that
//! leaves the question to a person.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::customers::{Identity, IdentityKind, Region, normalize};
use crate::orders::{FulfillmentStatus, Order, Status};
use crate::validation::{Check, Invalid};

const MAX_QUESTION: usize = 500;
const MAX_ANSWER: usize = 4096;
const MAX_KEYWORDS: usize = 30;
const MAX_KEYWORD: usize = 100;

/// BM25's term-frequency saturation and length normalisation, the usual values.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// How close to the best possible score a match must come to be sent without a person.
pub const CONFIDENCE_THRESHOLD: f64 = 0.5;

/// Words too common to tell questions apart, in English and German.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "be", "am", "do", "does", "did", "i", "me", "my", "you", "your", "we", "our",
    "us", "it", "its", "to", "of", "in", "on", "at", "for", "and", "or", "can", "could", "how", "what", "when",
    "where", "why", "which", "who", "will", "would", "with", "this", "that", "there", "have", "has", "please", "hi",
    "hello", "hey", "thanks", "thank", "any", "some", "so", "if", "about", "der", "die", "das", "ein", "eine", "einen",
    "ist", "sind", "ich", "mein", "meine", "mir", "mich", "sie", "ihr", "ihre", "und", "oder", "zu", "von", "mit",
    "für", "wie", "was", "wann", "wo", "kann", "können", "bitte", "hallo", "danke", "es", "auf", "im", "den", "dem",
    "des", "bei", "man", "gibt", "wir", "uns",
];

/// Endings taken off words so that "shipping", "shipped" and "ships" meet, longest first.
const SUFFIXES: &[&str] = &[
    "ations", "ation", "ungen", "ings", "ing", "ung", "ies", "ied", "es", "ed", "en", "er", "ly", "s", "e", "y",
];
/// A stem shorter than this is too short to mean anything: the word is kept whole.
const MIN_STEM: usize = 3;

// ───────────────────────────── the merchant's list ─────────────────────────────

/// A frequent question and its answer, as a merchant writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FaqEntryDraft {
    pub question: String,
    pub answer: String,
    /// More words customers use for the same question ("Lieferzeit", "delivery time").
    #[serde(default)]
    pub keywords: Vec<String>,
}

impl FaqEntryDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("question", &self.question, MAX_QUESTION);
        check.free_text("answer", &self.answer, MAX_ANSWER);
        if self.keywords.len() > MAX_KEYWORDS {
            check.fail("keywords", "too_long", format!("at most {MAX_KEYWORDS} keywords"));
        }
        for (i, keyword) in self.keywords.iter().enumerate() {
            check.text(&format!("keywords[{i}]"), keyword, MAX_KEYWORD);
        }
        if tokens(&self.question).is_empty() {
            check.fail("question", "invalid", "has no words a message could match");
        }
        check.done()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaqEntry {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub keywords: Vec<String>,
    pub created_at: Timestamp,
}

// ───────────────────────────── tokens ─────────────────────────────

/// The words of a text as matching sees them: lower case, without punctuation and stop
/// words, stemmed.
pub fn tokens(text: &str) -> Vec<String> {
    let text = text.to_lowercase();
    words(&text)
        .filter(|word| !STOP_WORDS.contains(word))
        .map(stem)
        .collect()
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// Takes one common ending off a lower-cased word, and a doubled last consonant that the
/// ending left behind ("shipp" from "shipping" is "ship").
fn stem(word: &str) -> String {
    let Some(stem) = SUFFIXES
        .iter()
        .filter_map(|suffix| word.strip_suffix(suffix))
        .find(|stem| stem.chars().count() >= MIN_STEM)
    else {
        return word.to_owned();
    };
    let mut chars: Vec<char> = stem.chars().collect();
    let doubled = chars.len() > MIN_STEM
        && chars[chars.len() - 1] == chars[chars.len() - 2]
        && !"aeiouls".contains(chars[chars.len() - 1]);
    if doubled {
        chars.pop();
    }
    chars.into_iter().collect()
}

// ───────────────────────────── ranking ─────────────────────────────

/// The best entry for a message and how sure the ranking is of it (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// The entry's position in the list given to [`best_match`].
    pub index: usize,
    pub confidence: f64,
}

/// BM25 statistics over the entries' questions and keywords. Answers are left out: they talk
/// about other things ("returns are free" in the shipping answer) and would draw questions to
/// the wrong entry.
struct Ranking {
    documents: Vec<HashMap<String, usize>>,
    lengths: Vec<usize>,
    average_length: f64,
    holding: HashMap<String, usize>,
}

impl Ranking {
    fn new(entries: &[FaqEntry]) -> Ranking {
        let documents: Vec<Vec<String>> = entries
            .iter()
            .map(|e| tokens(&format!("{} {}", e.question, e.keywords.join(" "))))
            .collect();
        let lengths: Vec<usize> = documents.iter().map(Vec::len).collect();
        let average_length = lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64;
        let mut holding = HashMap::new();
        for document in &documents {
            for term in document.iter().collect::<HashSet<_>>() {
                *holding.entry(term.clone()).or_insert(0) += 1;
            }
        }
        Ranking {
            documents: documents.into_iter().map(|d| frequencies(&d)).collect(),
            lengths,
            average_length: average_length.max(1.0),
            holding,
        }
    }

    /// How rare a term is among the entries; a term no entry has weighs the most.
    fn idf(&self, term: &str) -> f64 {
        let n = self.documents.len() as f64;
        let holding = self.holding.get(term).copied().unwrap_or(0) as f64;
        (1.0 + (n - holding + 0.5) / (holding + 0.5)).ln()
    }

    fn score(&self, index: usize, query: &[String]) -> f64 {
        let length_norm = 1.0 - B + B * self.lengths[index] as f64 / self.average_length;
        query
            .iter()
            .map(|term| {
                let tf = self.documents[index].get(term).copied().unwrap_or(0) as f64;
                self.idf(term) * tf * (K1 + 1.0) / (tf + K1 * length_norm)
            })
            .sum()
    }

    /// The score of an entry of average length holding every word of the query once: with
    /// it, a message full of words no entry knows is not taken for a match.
    fn best_possible(&self, query: &[String]) -> f64 {
        query.iter().map(|term| self.idf(term)).sum()
    }
}

fn frequencies(terms: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for term in terms {
        *counts.entry(term.clone()).or_insert(0) += 1;
    }
    counts
}

/// The entry that answers `message` best, whatever the confidence; `None` when no entry
/// shares a word with it.
pub fn best_match(entries: &[FaqEntry], message: &str) -> Option<Match> {
    let mut query = tokens(message);
    query.sort();
    query.dedup();
    if entries.is_empty() || query.is_empty() {
        return None;
    }
    let ranking = Ranking::new(entries);
    let best_possible = ranking.best_possible(&query);
    (0..entries.len())
        .map(|index| (index, ranking.score(index, &query)))
        .filter(|(_, score)| *score > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(index, score)| Match {
            index,
            confidence: (score / best_possible).min(1.0),
        })
}

/// The entry to answer `message` with, when the ranking is sure enough.
pub fn confident_match(entries: &[FaqEntry], message: &str) -> Option<Match> {
    best_match(entries, message).filter(|m| m.confidence >= CONFIDENCE_THRESHOLD)
}

// ───────────────────────────── where is my order ─────────────────────────────

/// The language a customer asked in, so that the answer comes back in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    German,
}

const ORDER_QUESTIONS_EN: &[&str] = &[
    "where is my order",
    "where s my order",
    "where is my package",
    "where is my parcel",
    "track my order",
    "tracking",
    "order status",
    "has my order shipped",
    "when will my order arrive",
];
const ORDER_QUESTIONS_DE: &[&str] = &[
    "wo ist meine bestellung",
    "wo bleibt meine bestellung",
    "wo ist mein paket",
    "sendungsverfolgung",
    "sendungsnummer",
    "lieferung",
    "lieferstatus",
    "bestellstatus",
];

/// Whether the customer asks where their order is, and in which language. Phrases are
/// matched on whole words of the lower-cased text, not on stems: "tracking" is the intent,
/// "track record" is not.
pub fn asks_for_order(message: &str) -> Option<Language> {
    let text = format!(" {} ", words(&message.to_lowercase()).collect::<Vec<_>>().join(" "));
    let asked = |phrases: &[&str]| phrases.iter().any(|p| text.contains(&format!(" {p} ")));
    if asked(ORDER_QUESTIONS_DE) {
        Some(Language::German)
    } else if asked(ORDER_QUESTIONS_EN) {
        Some(Language::English)
    } else {
        None
    }
}

/// What the customer is told about their latest order: its number and status, and the
/// carrier and tracking number once a parcel is on its way.
pub fn order_answer(order: &Order, language: Language) -> String {
    let status = status_words(order.status, language);
    let mut answer = match language {
        Language::English => format!("Your order {} {status}.", order.number),
        Language::German => format!("Ihre Bestellung {} {status}.", order.number),
    };
    if let Some((carrier, tracking)) = shipped_parcel(order) {
        answer.push_str(&match language {
            Language::English => format!(" It travels with {carrier}, tracking number {tracking}."),
            Language::German => format!(" Sie ist mit {carrier} unterwegs, Sendungsnummer {tracking}."),
        });
    }
    answer
}

/// What a visitor gave to look an order up, as a shop's order-status page asks for it: the
/// order number and the e-mail address it was placed with. On a channel that does not vouch
/// for who writes (the web chat), an order is only told about to someone who knows both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLookup {
    pub number: Option<i64>,
    /// Lower-cased, from the message or else the e-mail the visitor gave the chat.
    pub email: Option<String>,
}

/// The order number (`#1001`, or a bare `1001` in a message that also holds an e-mail address
/// or asks about an order: a postcode is no order number) and the e-mail address in
/// `message`; `claimed_email` stands in for a message without an address.
pub fn order_lookup(message: &str, claimed_email: Option<&str>) -> OrderLookup {
    let trim = |word: &str| -> String {
        word.trim_matches(|c: char| "<>()[]{},;:!?\"'".contains(c))
            .trim_end_matches('.')
            .to_owned()
    };
    let words: Vec<String> = message.split_whitespace().map(trim).collect();
    let email = words
        .iter()
        .filter(|w| w.contains('@'))
        .find_map(|w| normalize(&Identity::new(IdentityKind::Email, w.as_str()), Region::DE).ok())
        .map(|identity| identity.value)
        .or_else(|| claimed_email.map(|e| e.trim().to_lowercase()));
    let digits = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) && w.len() <= 18;
    let marked = words
        .iter()
        .filter_map(|w| w.strip_prefix('#'))
        .find(|w| digits(w))
        .and_then(|w| w.parse().ok());
    let bare = || {
        let plausible = words.iter().any(|w| w.contains('@')) || asks_for_order(message).is_some();
        words
            .iter()
            .filter(|_| plausible)
            .find(|w| digits(w) && w.len() >= 4)
            .and_then(|w| w.parse().ok())
    };
    let number = marked.or_else(bare);
    OrderLookup { number, email }
}

/// Whether `email` is the address `order` was placed with, or one of its customer's
/// (`customer_emails`, canonical).
pub fn order_placed_with(order: &Order, customer_emails: &[String], email: &str) -> bool {
    let email = email.trim().to_lowercase();
    order.email.as_deref().is_some_and(|e| e.trim().to_lowercase() == email) || customer_emails.contains(&email)
}

/// The bot's question for what it needs to look an order up.
pub fn order_lookup_request(language: Language) -> String {
    match language {
        Language::English => {
            "I can look your order up: please send me its order number and the e-mail address you placed it with."
        }
        Language::German => {
            "Gern sehe ich nach: Bitte senden Sie mir die Bestellnummer und die E-Mail-Adresse, mit der Sie bestellt haben."
        }
    }
    .to_owned()
}

/// The answer when no order has that number and e-mail address; it tells nothing about
/// which of the two did not match.
pub fn order_lookup_failed(language: Language) -> String {
    match language {
        Language::English => {
            "I could not find an order with that number and e-mail address. A colleague will get back to you here."
        }
        Language::German => {
            "Zu dieser Bestellnummer und E-Mail-Adresse finde ich keine Bestellung. Ein Kollege meldet sich hier bei Ihnen."
        }
    }
    .to_owned()
}

/// The carrier and tracking number of the order's latest shipped fulfilment.
fn shipped_parcel(order: &Order) -> Option<(&str, &str)> {
    order
        .fulfillments
        .iter()
        .rev()
        .filter(|f| matches!(f.status, FulfillmentStatus::Shipped | FulfillmentStatus::Delivered))
        .find_map(|f| Some((f.carrier.as_deref()?, f.tracking_number.as_deref()?)))
}

fn status_words(status: Status, language: Language) -> &'static str {
    match (language, status) {
        (Language::English, Status::Placed) => "has been received",
        (Language::English, Status::Allocated) => "is being prepared",
        (Language::English, Status::PartiallyFulfilled) => "is partly on its way",
        (Language::English, Status::ReadyForPickup) => "is ready for pickup",
        (Language::English, Status::Shipped) => "has shipped",
        (Language::English, Status::Completed) => "is complete",
        (Language::English, Status::Cancelled) => "was cancelled",
        (Language::English, Status::Returned) => "was returned",
        (Language::German, Status::Placed) => "ist eingegangen",
        (Language::German, Status::Allocated) => "wird vorbereitet",
        (Language::German, Status::PartiallyFulfilled) => "ist teilweise unterwegs",
        (Language::German, Status::ReadyForPickup) => "liegt zur Abholung bereit",
        (Language::German, Status::Shipped) => "wurde versandt",
        (Language::German, Status::Completed) => "ist abgeschlossen",
        (Language::German, Status::Cancelled) => "wurde storniert",
        (Language::German, Status::Returned) => "wurde zurückgegeben",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(question: &str, keywords: &[&str]) -> FaqEntry {
        FaqEntry {
            id: format!("faq_{question}"),
            question: question.into(),
            answer: "answer".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            created_at: Timestamp(0),
        }
    }

    fn list() -> Vec<FaqEntry> {
        vec![
            entry("How long does shipping take?", &["delivery time", "Lieferzeit"]),
            entry("Can I return an item?", &["refund", "Rückgabe"]),
            entry("What are your opening hours?", &["Öffnungszeiten", "open"]),
        ]
    }

    #[test]
    fn tokens_drop_case_punctuation_and_stop_words_and_meet_on_stems() {
        assert_eq!(tokens("How LONG does Shipping take?!"), ["long", "ship", "tak"]);
        assert_eq!(tokens("shipped, ships; shipping"), ["ship", "ship", "ship"]);
        assert_eq!(tokens("Returns returned return"), ["return", "return", "return"]);
        assert_eq!(tokens("Wo ist die Lieferung?"), ["liefer"]);
        assert_eq!(tokens("the a an"), Vec::<String>::new());
    }

    #[test]
    fn short_words_keep_their_endings() {
        assert_eq!(stem("bus"), "bus");
        assert_eq!(stem("eyes"), "eye");
        assert_eq!(stem("hours"), "hour");
    }

    #[test]
    fn the_entry_that_shares_the_rare_words_wins() {
        let entries = list();
        let found = best_match(&entries, "how long will shipping to Vienna take").unwrap();
        assert_eq!(found.index, 0);
        let found = best_match(&entries, "I want a refund, can I return these shoes?").unwrap();
        assert_eq!(found.index, 1);
        assert_eq!(best_match(&entries, "Öffnungszeiten?").unwrap().index, 2);
    }

    #[test]
    fn a_match_needs_confidence() {
        let entries = list();
        let sure = confident_match(&entries, "How long does shipping take?").unwrap();
        assert!(sure.confidence > 0.8, "{sure:?}");
        assert!(confident_match(&entries, "Do you sell gift cards for birthdays?").is_none());
        let weak = best_match(&entries, "Do you ship gift cards for birthdays to Norway?").unwrap();
        assert!(weak.confidence < CONFIDENCE_THRESHOLD, "{weak:?}");
        assert_eq!(best_match(&entries, "the a an"), None);
        assert_eq!(best_match(&[], "shipping"), None);
    }

    #[test]
    fn confidence_stays_between_zero_and_one() {
        let entries = list();
        for message in [
            "ship ship ship ship",
            "return",
            "long shipping delivery time Lieferzeit",
        ] {
            let found = best_match(&entries, message).unwrap();
            assert!((0.0..=1.0).contains(&found.confidence), "{message}: {found:?}");
        }
    }

    #[test]
    fn order_questions_are_recognised_in_english_and_german() {
        assert_eq!(asks_for_order("Hi, where is my order??"), Some(Language::English));
        assert_eq!(asks_for_order("Where's my order #1001"), Some(Language::English));
        assert_eq!(
            asks_for_order("Do you have a tracking number?"),
            Some(Language::English)
        );
        assert_eq!(asks_for_order("Wo ist meine Bestellung?"), Some(Language::German));
        assert_eq!(asks_for_order("Wann kommt die Lieferung"), Some(Language::German));
        assert_eq!(asks_for_order("Do you ship to Austria?"), None);
        assert_eq!(asks_for_order("I ordered tracking-free"), Some(Language::English));
        assert_eq!(asks_for_order("trackingnumber"), None);
    }

    #[test]
    fn an_order_lookup_needs_a_number_and_an_email() {
        let found = order_lookup("Order #1001, Tom.Becker@Example.com.", None);
        assert_eq!(found.number, Some(1001));
        assert_eq!(found.email.as_deref(), Some("tom.becker@example.com"));
        let claimed = order_lookup("where is my order 1001", Some("ann@example.com"));
        assert_eq!(
            (claimed.number, claimed.email.as_deref()),
            (Some(1001), Some("ann@example.com"))
        );
        assert_eq!(order_lookup("where is my order?", None).number, None);
        assert_eq!(order_lookup("I need 2000 scarves", None).number, None);
        let postcode = order_lookup("My postcode is 10115, do you ship there?", Some("ann@example.com"));
        assert_eq!(postcode.number, None);
        assert_eq!(order_lookup("(#1002)", None).number, Some(1002));
        assert_eq!(order_lookup("mail me at not-an-address@", None).email, None);
    }

    #[test]
    fn faq_drafts_are_checked() {
        let draft = FaqEntryDraft {
            question: "the and?".into(),
            answer: " ".into(),
            keywords: vec!["".into()],
        };
        let fields: Vec<String> = draft.validate().unwrap_err().0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["answer", "keywords[0]", "question"]);
    }
}
