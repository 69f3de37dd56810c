//! The web chat of the merchant's own widget: a visitor gets a token for a session and
//! writes with it; replies reach the visitor over a live stream, not a provider.

use serde::{Deserialize, Serialize};

use super::inbound::InboundMessage;
use crate::customers::{Identity, IdentityKind, Region, normalize};
use crate::validation::{Check, Invalid};

/// Live streams one visitor may follow at once (a few tabs); more are refused.
pub const MAX_STREAMS_PER_VISITOR: u32 = 3;

/// Whether a visitor's message names an order, and so counts as an order lookup.
pub fn names_an_order(message: &VisitorMessage) -> bool {
    super::answers::order_lookup(&message.text, message.email.as_deref())
        .number
        .is_some()
}

/// What a visitor's browser posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VisitorMessage {
    pub text: String,
    /// The name the visitor gave the chat, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An e-mail the visitor gave. Anyone can type any address, so it links the chat to
    /// nobody: it is kept on the conversation for an agent to confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The widget's own id of the message: sent again (a flaky connection), it is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl VisitorMessage {
    /// The message as any provider's would read, from the visitor `visitor_id`; `fresh_id`
    /// names a message that came without an id of its own.
    pub fn validate(&self, visitor_id: &str, fresh_id: String, region: Region) -> Result<InboundMessage, Invalid> {
        let mut check = Check::new();
        check.free_text("text", &self.text, super::MAX_TEXT);
        if let Some(name) = &self.name {
            check.text("name", name, super::MAX_NAME);
        }
        if let Some(id) = &self.message_id {
            check.text("message_id", id, 200);
        }
        let identities = vec![Identity::new(IdentityKind::Webchat, visitor_id.to_owned())];
        let mut claimed_email = None;
        if let Some(email) = &self.email {
            let identity = Identity::new(IdentityKind::Email, email.clone());
            match normalize(&identity, region) {
                Ok(normal) => claimed_email = Some(normal.value),
                Err(Invalid(errors)) => errors.into_iter().for_each(|e| check.fail("email", &e.code, e.message)),
            }
        }
        check.done()?;
        Ok(InboundMessage {
            // Scoped by the visitor: ids from the browser are only unique within one session.
            provider_message_id: self
                .message_id
                .as_ref()
                .map_or(fresh_id, |id| format!("{visitor_id}:{}", id.trim())),
            address: visitor_id.to_owned(),
            identities,
            name: self.name.as_ref().map(|n| n.trim().to_owned()),
            text: Some(self.text.clone()),
            at: None,
            claimed_email,
            claimed_phone: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_in_a_message_count_as_lookups() {
        let visitor = |text: &str| VisitorMessage {
            text: text.into(),
            name: None,
            email: Some("ann@example.com".into()),
            message_id: None,
        };
        assert!(names_an_order(&visitor("where is #1001?")));
        assert!(!names_an_order(&visitor("do you ship to Austria?")));
    }

    fn message(email: Option<&str>, message_id: Option<&str>) -> VisitorMessage {
        VisitorMessage {
            text: "Hello".into(),
            name: Some(" Ann ".into()),
            email: email.map(str::to_owned),
            message_id: message_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_visitor_is_a_webchat_identity_and_an_email_only_a_claim() {
        let read = message(Some("Ann@Example.com"), Some("m1"))
            .validate("wcv_1", "msg_fresh".into(), Region::DE)
            .unwrap();
        assert_eq!(read.address, "wcv_1");
        assert_eq!(read.provider_message_id, "wcv_1:m1");
        assert_eq!(read.identities[0], Identity::new(IdentityKind::Webchat, "wcv_1"));
        assert_eq!(read.identities.len(), 1, "an e-mail typed in a chat finds nobody");
        assert_eq!(read.claimed_email.as_deref(), Some("ann@example.com"));
        assert_eq!(read.name.as_deref(), Some("Ann"));
        let fresh = message(None, None)
            .validate("wcv_1", "msg_fresh".into(), Region::DE)
            .unwrap();
        assert_eq!(
            (fresh.provider_message_id.as_str(), fresh.identities.len()),
            ("msg_fresh", 1)
        );
    }

    #[test]
    fn bad_fields_are_reported() {
        let mut bad = message(Some("not an address"), None);
        bad.text = " ".into();
        let fields: Vec<String> = bad
            .validate("wcv_1", "m".into(), Region::DE)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["text", "email"]);
    }
}
