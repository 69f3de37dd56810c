//! Secrets kept at rest (the tokens of messaging channels), sealed with the server's secret
//! key: ChaCha20-Poly1305 with a fresh random nonce per seal, and the row's id as associated
//! data so that a sealed value copied onto another row does not open there.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use rand::RngCore;

use crate::Error;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// Names the format, so that a later one can be told apart.
const PREFIX: &str = "v1:";

/// The server's key for secrets at rest.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(redacted)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret key is 64 hexadecimal digits (32 bytes), e.g. from `openssl rand -hex 32`")]
pub struct BadSecretKey;

impl SecretKey {
    pub fn generate() -> SecretKey {
        let mut key = [0; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        SecretKey(key)
    }

    pub fn from_hex(text: &str) -> Result<SecretKey, BadSecretKey> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadSecretKey)?;
        bytes.try_into().map(SecretKey).map_err(|_| BadSecretKey)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// `plaintext` sealed for the row `context`: `v1:<hex nonce><hex ciphertext and tag>`.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, Error> {
        let mut nonce = [0; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let sealed = self
            .cipher()
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| Error::Corrupt("a secret could not be sealed".into()))?;
        Ok(format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(sealed)))
    }

    /// The plaintext of a value sealed for `context`. Fails when the key is not the one it
    /// was sealed with (the server's key changed) or the value was tampered with.
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, Error> {
        let unreadable =
            || Error::Corrupt("stored credentials cannot be opened: was the server's secret key changed?".into());
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|bytes| bytes.len() > NONCE_BYTES)
            .ok_or_else(unreadable)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| unreadable())?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher()
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let key = SecretKey::generate();
        let sealed = key.seal(b"bot-token", "inb_1").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("bot-token"));
        assert_eq!(key.open(&sealed, "inb_1").unwrap(), b"bot-token");
        assert_ne!(
            key.seal(b"bot-token", "inb_1").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert!(key.open(&sealed, "inb_2").is_err());
        assert!(SecretKey::generate().open(&sealed, "inb_1").is_err());
        let mut tampered = sealed.clone();
        let other = if sealed.ends_with("00") { "ff" } else { "00" };
        tampered.replace_range(sealed.len() - 2.., other);
        assert!(key.open(&tampered, "inb_1").is_err());
        assert!(key.open("plain", "inb_1").is_err());
    }

    #[test]
    fn keys_are_64_hex_digits() {
        let key = SecretKey::generate();
        assert_eq!(SecretKey::from_hex(&key.to_hex()), Ok(key.clone()));
        assert_eq!(key.to_hex().len(), 64);
        assert_eq!(SecretKey::from_hex("abcd"), Err(BadSecretKey));
        assert_eq!(SecretKey::from_hex(&"zz".repeat(32)), Err(BadSecretKey));
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }
}
