//! Sealing confidential fields: per-case data keys under a master key.
//!
//! Each case (each intake stream) gets a random 256-bit data key. Its
//! confidential fields are serialised to JSON and sealed with
//! XChaCha20-Poly1305 under that key, the stream id as associated data (a
//! sealed blob moved to another stream does not open). The sealed blob is
//! what the event payload holds, so the log's hash chain covers the
//! ciphertext. The data key itself is kept outside the hash chain, wrapped
//! (sealed) under the master key from configuration. Destroying the wrapped
//! key erases the fields everywhere the blob went (crypto-shredding): the
//! chain still verifies, the fields read as erased.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

/// The algorithm name in sealed blobs.
pub const ALGORITHM: &str = "XChaCha20-Poly1305";

/// Sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The blob does not open with this key and associated data (wrong key,
    /// other stream, or altered bytes).
    #[error("sealed data does not open: wrong key, wrong stream or altered")]
    DoesNotOpen,
    /// The blob is not well formed.
    #[error("malformed sealed data: {0}")]
    Malformed(String),
    /// The master key file is wrong.
    #[error("master key {path}: {message}")]
    MasterKey {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A 256-bit key (master or data key). Not printable.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Reads a master key file: 64 hex digits (surrounding whitespace ignored).
    ///
    /// # Errors
    /// When the file cannot be read or does not hold 64 hex digits.
    pub fn read_master(path: &std::path::Path) -> Result<Self, SealError> {
        let err = |message: String| SealError::MasterKey {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("must hold 64 hex digits (a 256-bit key)".into()));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| err(e.to_string()))?;
        }
        Ok(Self(key))
    }

    /// Writes a new random master key file (mode 0600); refuses to
    /// overwrite one.
    ///
    /// # Errors
    /// When the file exists or cannot be written.
    pub fn create_master(path: &std::path::Path) -> Result<Self, crate::token::KeyError> {
        let key = Self::generate();
        let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        crate::token::write_new_secret(path, format!("{hex}\n").as_bytes())?;
        Ok(key)
    }

    /// A short public name of this key (16 hex digits of a SHA-256 of
    /// it; reveals nothing of the key): which key sealed a blob, so that a
    /// blob sealed under a key since destroyed is told from an altered one.
    #[must_use]
    pub fn id(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(b"baove-data-key-id/v1")
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..8])
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plaintext` with `aad` as associated data.
    #[must_use]
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let nonce: [u8; 24] = rand::random();
        // Encryption with a valid key and nonce cannot fail for inputs
        // below the AEAD's limit (256 GiB); an empty blob is never produced.
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        Sealed {
            alg: ALGORITHM.to_owned(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    /// Opens a blob sealed with this key and `aad`.
    ///
    /// # Errors
    /// [`SealError`] when it is malformed or does not open.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        if sealed.alg != ALGORITHM {
            return Err(SealError::Malformed(format!(
                "algorithm {:?}, expected {ALGORITHM}",
                sealed.alg
            )));
        }
        let nonce = B64
            .decode(&sealed.nonce)
            .map_err(|e| SealError::Malformed(format!("nonce: {e}")))?;
        if nonce.len() != 24 {
            return Err(SealError::Malformed("nonce must be 24 bytes".into()));
        }
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|e| SealError::Malformed(format!("ciphertext: {e}")))?;
        self.cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map_err(|_| SealError::DoesNotOpen)
    }

    /// This data key wrapped under `master` for `stream` (to store).
    #[must_use]
    pub fn wrap(&self, master: &Self, stream: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&master.seal(stream, &self.0)).unwrap_or_default()
    }

    /// The data key of `wrapped` (from [`Key::wrap`]).
    ///
    /// # Errors
    /// When it does not open under `master` for `stream`.
    pub fn unwrap_key(master: &Self, stream: &[u8], wrapped: &[u8]) -> Result<Self, SealError> {
        let sealed: Sealed =
            serde_json::from_slice(wrapped).map_err(|e| SealError::Malformed(e.to_string()))?;
        let bytes = master.open(stream, &sealed)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SealError::Malformed("a data key is 32 bytes".into()))?;
        Ok(Self(key))
    }
}

/// A sealed blob as it appears in event payloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// [`ALGORITHM`].
    pub alg: String,
    /// The 24-byte nonce, base64.
    pub nonce: String,
    /// Ciphertext with its tag, base64.
    pub ciphertext: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_keys_id_is_the_same_each_time_and_differs_between_keys() {
        let (a, b) = (Key::generate(), Key::generate());
        assert_eq!(a.id(), a.clone().id());
        assert_eq!(a.id().len(), 16);
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn a_sealed_blob_opens_only_with_its_key_and_stream_and_unaltered() {
        let key = Key::generate();
        let sealed = key.seal(b"stream-a", b"{\"name\":\"Nguyen Van A\"}");
        assert!(!sealed.ciphertext.contains("Nguyen"));
        assert_eq!(
            key.open(b"stream-a", &sealed).unwrap(),
            b"{\"name\":\"Nguyen Van A\"}"
        );
        assert_eq!(key.open(b"stream-b", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(
            Key::generate().open(b"stream-a", &sealed),
            Err(SealError::DoesNotOpen)
        );
        let mut bytes = B64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let altered = Sealed {
            ciphertext: B64.encode(bytes),
            ..sealed
        };
        assert_eq!(key.open(b"stream-a", &altered), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn a_data_key_wrapped_under_the_master_key_unwraps_to_the_same_key() {
        let master = Key::generate();
        let data = Key::generate();
        let wrapped = data.wrap(&master, b"s");
        let back = Key::unwrap_key(&master, b"s", &wrapped).unwrap();
        let sealed = data.seal(b"s", b"x");
        assert_eq!(back.open(b"s", &sealed).unwrap(), b"x");
        assert!(Key::unwrap_key(&Key::generate(), b"s", &wrapped).is_err());
    }

    #[test]
    fn master_key_files_hold_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = Key::create_master(&path).unwrap();
        let read = Key::read_master(&path).unwrap();
        assert_eq!(created.0, read.0);
        assert!(Key::create_master(&path).is_err());
        std::fs::write(dir.path().join("bad"), "abc").unwrap();
        let err = Key::read_master(&dir.path().join("bad")).unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }
}
