//! How each provider proves that a webhook call is its own (invariant 6: nothing unverified
//! gets in). Every comparison of a secret or a MAC takes the same time whatever the input, so
//! that a caller cannot find the right value byte by byte.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Credentials, InboxKind};
use crate::webhooks;

/// Telegram echoes the inbox's `secret_token` here.
pub const TELEGRAM_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// Meta (WhatsApp, Messenger, Instagram): `sha256=<hex HMAC-SHA256(app_secret, raw body)>`.
pub const META_HEADER: &str = "X-Hub-Signature-256";
/// Viber: `<hex HMAC-SHA256(auth_token, raw body)>`.
pub const VIBER_HEADER: &str = "X-Viber-Content-Signature";
/// The inbound e-mail relay sends `Bearer <inbound_secret>`.
pub const EMAIL_HEADER: &str = "Authorization";

/// The header that carries the proof for an inbox of `kind`.
pub const fn header(kind: InboxKind) -> &'static str {
    match kind {
        InboxKind::Telegram => TELEGRAM_HEADER,
        InboxKind::Whatsapp | InboxKind::Messenger | InboxKind::Instagram => META_HEADER,
        InboxKind::Viber => VIBER_HEADER,
        InboxKind::Email => EMAIL_HEADER,
        InboxKind::Webchat | InboxKind::Api => webhooks::SIGNATURE_HEADER,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("this channel's webhooks cannot be verified")]
    Unverifiable,
}

fn hmac(key: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this never falls back.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| Hmac::new(&Default::default()));
    mac.update(body);
    mac
}

/// `sha256=<hex>`, as Meta signs a webhook body with the app secret.
pub fn hub_signature(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(app_secret, body).finalize().into_bytes()))
}

/// The hex HMAC Viber puts in `X-Viber-Content-Signature`.
pub fn viber_signature(auth_token: &str, body: &[u8]) -> String {
    hex::encode(hmac(auth_token, body).finalize().into_bytes())
}

/// Whether `hex_mac` is the HMAC of `body` under `key`, compared in constant time.
fn mac_matches(key: &str, body: &[u8], hex_mac: &str) -> Result<(), SignatureError> {
    let given = hex::decode(hex_mac.trim()).map_err(|_| SignatureError::Mismatch)?;
    hmac(key, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Equality of two secrets in time that depends on their length only.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let difference = given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    given.len() == expected.len() && std::hint::black_box(difference) == 0
}

/// Checks the proof `header_value` (the value of [`header`]) of a call with `body` against the
/// inbox's credentials. `now_unix` bounds how old a signed API-channel call may be.
pub fn verify(
    credentials: &Credentials,
    header_value: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let given = header_value.map(str::trim).filter(|v| !v.is_empty());
    let given = given.ok_or(SignatureError::Missing)?;
    let matched = match credentials {
        Credentials::Telegram(c) => same_secret(given, &c.secret_token),
        Credentials::Whatsapp(c) => return meta(&c.app_secret, given, body),
        Credentials::Meta(c) => return meta(&c.app_secret, given, body),
        Credentials::Viber(c) => return mac_matches(&c.auth_token, body, given),
        Credentials::Email(c) => given
            .strip_prefix("Bearer ")
            .is_some_and(|token| same_secret(token.trim(), &c.inbound_secret)),
        Credentials::Api(c) => {
            return webhooks::verify(given, body, &c.secret, now_unix, webhooks::DEFAULT_TOLERANCE_SECONDS)
                .map_err(|_| SignatureError::Mismatch);
        }
        Credentials::Webchat => return Err(SignatureError::Unverifiable),
    };
    if matched { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// Whether Meta's `GET` verification handshake (`hub.mode=subscribe`, `hub.verify_token`)
/// names this inbox; then its `hub.challenge` is echoed.
pub fn verify_handshake(credentials: &Credentials, mode: Option<&str>, token: Option<&str>) -> bool {
    let (Some(expected), Some(given)) = (credentials.verify_token(), token) else {
        return false;
    };
    mode == Some("subscribe") && same_secret(given, expected)
}

fn meta(app_secret: &str, given: &str, body: &[u8]) -> Result<(), SignatureError> {
    let hex_mac = given.strip_prefix("sha256=").ok_or(SignatureError::Mismatch)?;
    mac_matches(app_secret, body, hex_mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{ApiCredentials, MetaCredentials, TelegramCredentials, ViberCredentials};
    use proptest::prelude::*;

    fn telegram() -> Credentials {
        Credentials::Telegram(TelegramCredentials {
            bot_token: "123:ABC".into(),
            secret_token: "tg-secret_0123".into(),
        })
    }

    fn meta_credentials() -> Credentials {
        Credentials::Meta(MetaCredentials {
            page_access_token: "EAAB".into(),
            page_id: "1".into(),
            app_secret: "app-secret".into(),
            verify_token: "v".into(),
        })
    }

    fn viber() -> Credentials {
        Credentials::Viber(ViberCredentials {
            auth_token: "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9".into(),
        })
    }

    #[test]
    fn telegram_compares_the_secret_token() {
        assert_eq!(verify(&telegram(), Some("tg-secret_0123"), b"{}", 0), Ok(()));
        assert_eq!(
            verify(&telegram(), Some("tg-secret_0124"), b"{}", 0),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&telegram(), Some("tg-secret"), b"{}", 0),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(&telegram(), None, b"{}", 0), Err(SignatureError::Missing));
        assert_eq!(verify(&telegram(), Some(" "), b"{}", 0), Err(SignatureError::Missing));
    }

    #[test]
    fn meta_signs_the_raw_body_with_the_app_secret() {
        // Worked out independently: Python's hmac.new(b"app-secret", b'{"object":"page"}', sha256).
        let body = br#"{"object":"page"}"#;
        let signature = hub_signature("app-secret", body);
        assert_eq!(
            signature,
            "sha256=ae958d6f00b134dd32b95a9a76bedaaeb068c0949769358355023f7d1a0c580b"
        );
        assert_eq!(verify(&meta_credentials(), Some(&signature), body, 0), Ok(()));
        let upper = signature.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(verify(&meta_credentials(), Some(&upper), body, 0), Ok(()));
        assert_eq!(
            verify(&meta_credentials(), Some(&signature), br#"{"object":"page" }"#, 0),
            Err(SignatureError::Mismatch)
        );
        let bare = signature.trim_start_matches("sha256=");
        assert_eq!(
            verify(&meta_credentials(), Some(bare), body, 0),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&meta_credentials(), Some("sha256=zz"), body, 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn viber_signs_the_raw_body_with_the_auth_token() {
        let body = br#"{"event":"webhook","timestamp":1457764197627,"message_token":241256543215}"#;
        let signature = viber_signature("445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9", body);
        assert_eq!(signature.len(), 64);
        assert_eq!(verify(&viber(), Some(&signature), body, 0), Ok(()));
        assert_eq!(
            verify(&viber(), Some(&signature), b"{}", 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_api_channel_uses_omnihub_signatures_with_a_time_limit() {
        let credentials = Credentials::Api(ApiCredentials {
            webhook_url: "https://chat.example/replies".into(),
            secret: "api-secret-0123456789".into(),
        });
        let body = br#"{"text":"hi"}"#;
        let signed = webhooks::sign("api-secret-0123456789", 1_790_000_000, body);
        assert_eq!(verify(&credentials, Some(&signed), body, 1_790_000_010), Ok(()));
        assert_eq!(
            verify(&credentials, Some(&signed), body, 1_790_001_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(header(InboxKind::Api), "Omnihub-Signature");
    }

    #[test]
    fn the_meta_handshake_needs_subscribe_and_the_verify_token() {
        assert!(verify_handshake(&meta_credentials(), Some("subscribe"), Some("v")));
        assert!(!verify_handshake(&meta_credentials(), Some("subscribe"), Some("w")));
        assert!(!verify_handshake(&meta_credentials(), Some("unsubscribe"), Some("v")));
        assert!(!verify_handshake(&meta_credentials(), Some("subscribe"), None));
        assert!(!verify_handshake(
            &telegram(),
            Some("subscribe"),
            Some("tg-secret_0123")
        ));
    }

    #[test]
    fn a_known_hmac_vector_matches() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            viber_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest! {
        #[test]
        fn any_changed_byte_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 1..200),
            flip in any::<proptest::sample::Index>(),
        ) {
            let signature = hub_signature("app-secret", &body);
            prop_assert_eq!(verify(&meta_credentials(), Some(&signature), &body, 0), Ok(()));
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 1;
            prop_assert_eq!(verify(&meta_credentials(), Some(&signature), &changed, 0), Err(SignatureError::Mismatch));
        }
    }
}
