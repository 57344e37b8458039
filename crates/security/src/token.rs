//! Bearer tokens: EdDSA (Ed25519) JWTs.
//!
//! Claims: `sub` (user id), `role` (see [`Role`]), `agency` (agency id from
//! the directory), `units` (administrative unit ids in scope: a commune
//! officer's communes, a province officer's or auditor's provinces; none
//! for those two: every unit), `iat`, optionally `nbf`, and `exp` (Unix seconds). The token
//! travels in the gRPC metadata `authorization: Bearer <jwt>`.
//!
//! A token is refused (UNAUTHENTICATED) when its signature does not verify,
//! it has expired, it is not valid yet (`nbf`), it was issued in the future
//! (`iat`, beyond [`LEEWAY_SECS`]), it lives longer than the verifier's
//! maximum lifetime (default [`DEFAULT_MAX_LIFETIME_SECS`]), or its subject
//! is empty, longer than [`MAX_SUBJECT_CHARS`] or holds control characters.
//!
//! Keys are files: the private key as PKCS#8 PEM, the public key as SPKI
//! PEM (what `openssl genpkey -algorithm ed25519` and `openssl pkey
//! -pubout` write; [`generate_key_pair`] writes the same: a PKCS#8 v1
//! private key without the optional public key, which OpenSSL 3 and
//! Python's `cryptography` read. Both v1 and v2 files are read.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// A role a user acts in. The policy table ([`crate::policy`]) says what
/// each may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes reports on the 111 hotline.
    HotlineOperator,
    /// Commune officer (cán bộ cấp xã): the cases of their commune(s).
    CommuneOfficer,
    /// Province officer / child-protection department: every case in the
    /// province.
    ProvinceOfficer,
    /// Police (Công an): notifications they send, referrals to their agency.
    Police,
    /// Staff of another receiving agency (health, education...): referrals
    /// to their agency.
    AgencyStaff,
    /// Auditor / inspector: reads everything, the audit RPCs, changes nothing.
    Auditor,
    /// Keeps the agency directory and reference data; no case content.
    Administrator,
}

impl Role {
    /// Every role, in the order of the README's policy table.
    pub const ALL: [Self; 7] = [
        Self::HotlineOperator,
        Self::CommuneOfficer,
        Self::ProvinceOfficer,
        Self::Police,
        Self::AgencyStaff,
        Self::Auditor,
        Self::Administrator,
    ];

    /// The name in tokens, actors and the access log.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HotlineOperator => "hotline_operator",
            Self::CommuneOfficer => "commune_officer",
            Self::ProvinceOfficer => "province_officer",
            Self::Police => "police",
            Self::AgencyStaff => "agency_staff",
            Self::Auditor => "auditor",
            Self::Administrator => "administrator",
        }
    }

    /// The role of a name, as in tokens.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The role.
    pub role: Role,
    /// The agency id (directory), empty when none.
    #[serde(default)]
    pub agency: String,
    /// Administrative unit ids in scope: a commune officer's communes, a
    /// province officer's or auditor's provinces (none: every unit).
    #[serde(default)]
    pub units: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid before, Unix seconds (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Seconds of clock difference tolerated between the issuer and the
/// services (`exp`, `nbf`, `iat`).
pub const LEEWAY_SECS: u64 = 30;
/// The longest lifetime (`exp - iat`) a verifier accepts unless configured
/// otherwise: one working shift.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 12 * 60 * 60;
/// The longest subject (user id) accepted.
pub const MAX_SUBJECT_CHARS: usize = 128;

/// The authenticated caller of one request, with the purpose they stated
/// (gRPC metadata `baove-purpose`), for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user id (the token's subject).
    pub user_id: String,
    /// The role.
    pub role: Role,
    /// The agency id.
    pub agency_id: String,
    /// Units in scope.
    pub units: Vec<String>,
    /// The stated purpose of the request, empty when none was given.
    pub purpose: String,
}

impl Caller {
    /// The caller of verified claims.
    #[must_use]
    pub fn from_claims(claims: Claims) -> Self {
        Self {
            user_id: claims.sub,
            role: claims.role,
            agency_id: claims.agency,
            units: claims.units,
            purpose: String::new(),
        }
    }

    /// Whether the caller's scope covers records of `unit_id`, a commune
    /// whose province-level units (its province and that province's
    /// successors) are `provinces`: commune officers cover the units in
    /// their token; province officers and auditors the provinces in their
    /// token, or every unit when their token lists none (a deployment that
    /// serves one province); nobody else any unit.
    #[must_use]
    pub fn covers_unit(&self, unit_id: &str, provinces: &[&str]) -> bool {
        match self.role {
            Role::ProvinceOfficer | Role::Auditor => {
                self.units.is_empty()
                    || self
                        .units
                        .iter()
                        .any(|u| u == unit_id || provinces.contains(&u.as_str()))
            }
            Role::CommuneOfficer => self.units.iter().any(|u| u == unit_id),
            _ => false,
        }
    }

    /// Whether the caller works for `agency_id` (police, agency staff).
    #[must_use]
    pub fn is_of_agency(&self, agency_id: &str) -> bool {
        !self.agency_id.is_empty() && self.agency_id == agency_id
    }
}

/// Why a token was not accepted. The message is what the caller reads in
/// `UNAUTHENTICATED`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No `authorization` metadata.
    #[error("missing credentials: send the metadata `authorization: Bearer <token>`")]
    Missing,
    /// Not `Bearer <jwt>`, or not a JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed by no configured key, or with another algorithm.
    #[error("token signature does not verify with any configured key")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Before its `nbf`, or issued in the future.
    #[error("token not valid yet: {0}")]
    NotYetValid(String),
    /// `exp - iat` longer than the verifier accepts.
    #[error("token lifetime of {lifetime_secs} s is longer than the {max_secs} s accepted")]
    TooLong {
        /// The token's lifetime.
        lifetime_secs: u64,
        /// The longest accepted.
        max_secs: u64,
    },
    /// The subject is empty, too long or holds control characters.
    #[error("token subject (sub) {0}")]
    BadSubject(&'static str),
}

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct KeyError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

fn key_error(path: &Path, message: impl std::fmt::Display) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads an Ed25519 private key (PKCS#8 PEM).
///
/// # Errors
/// When the file cannot be read or is not such a key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| key_error(path, format!("not an Ed25519 PKCS#8 PEM private key ({e})")))
}

/// Reads an Ed25519 public key (SPKI PEM).
///
/// # Errors
/// When the file cannot be read or is not such a key.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| key_error(path, format!("not an Ed25519 SPKI PEM public key ({e})")))
}

/// A new random Ed25519 key.
#[must_use]
pub fn new_signing_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// Writes a new key pair: `private` (PKCS#8 PEM, mode 0600) and `public`
/// (SPKI PEM). Refuses to overwrite an existing private key.
///
/// # Errors
/// When a file exists already or cannot be written.
pub fn generate_key_pair(private: &Path, public: &Path) -> Result<VerifyingKey, KeyError> {
    let key = new_signing_key();
    let pem = pkcs8_v1_pem(&key).map_err(|e| key_error(private, e))?;
    write_new_secret(private, pem.as_bytes())?;
    let verifying = key.verifying_key();
    let public_pem = verifying
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error(public, e))?;
    std::fs::write(public, public_pem).map_err(|e| key_error(public, e))?;
    Ok(verifying)
}

/// The PKCS#8 v1 PEM of `key`: the private key alone, as `openssl genpkey
/// -algorithm ed25519` writes it. (ed25519-dalek's own encoding is v2, with
/// the public key attached, which OpenSSL 3 refuses as "extra data".)
///
/// # Errors
/// Never in practice: encoding 32 bytes of key.
pub fn pkcs8_v1_pem(
    key: &SigningKey,
) -> Result<ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String>, ed25519_dalek::pkcs8::Error>
{
    ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
}

/// Writes a secret to a file that must not exist yet, readable by its owner
/// only.
///
/// # Errors
/// When the file exists or cannot be written.
pub fn write_new_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| key_error(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, e))
}

/// The SPKI PEM text of a public key.
#[must_use]
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Mints tokens with a private key.
pub struct Issuer {
    key: EncodingKey,
}

impl Issuer {
    /// An issuer signing with `key`.
    ///
    /// # Errors
    /// Never in practice: the key is re-encoded as PKCS#8 for the JWT crate.
    pub fn new(key: &SigningKey) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| key_error(Path::new("<signing key>"), e))?;
        Ok(Self {
            key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// An issuer with the private key in `path`.
    ///
    /// # Errors
    /// When the key cannot be read.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        Self::new(&read_signing_key(path)?)
    }

    /// A token for `user` in `role`, valid for `ttl_secs` from now.
    ///
    /// # Errors
    /// When signing fails (it does not with a valid key).
    pub fn issue(
        &self,
        user: &str,
        role: Role,
        agency: &str,
        units: &[String],
        ttl_secs: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        self.sign(&Claims {
            sub: user.to_owned(),
            role,
            agency: agency.to_owned(),
            units: units.to_vec(),
            iat: now,
            nbf: None,
            exp: now.saturating_add(ttl_secs),
        })
    }

    /// Signs exactly these claims.
    ///
    /// # Errors
    /// When signing fails.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
    }
}

/// The time rules the JWT crate applies (with [`LEEWAY_SECS`]), for a
/// token remembered as verified: it expires as it would have.
fn check_time(claims: Claims, now: u64) -> Result<Claims, TokenError> {
    if claims.exp < now.saturating_sub(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::NotYetValid("nbf is in the future".into()));
    }
    Ok(claims)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies tokens against the configured public keys (several, so that a
/// key can be rotated).
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
    max_lifetime_secs: u64,
    /// Tokens whose signature verified, with their claims: a caller sends
    /// the same token with every call of a shift, and an Ed25519
    /// verification costs more than the rest of a small call. Keyed by the
    /// whole token, so only the very string that verified is found; the
    /// time rules are checked again on every use. Emptied when full.
    verified: Arc<Mutex<HashMap<String, Claims>>>,
}

/// Most tokens [`Verifier`] remembers as verified (a few thousand callers
/// on one shift); past that it forgets them all and starts again.
pub const VERIFIED_KEPT: usize = 4096;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trusting `keys`.
    #[must_use]
    pub fn new(keys: &[VerifyingKey]) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            keys: keys
                .iter()
                .map(|k| DecodingKey::from_ed_der(k.as_bytes()))
                .collect(),
            validation,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            verified: Arc::default(),
        }
    }

    /// The same verifier accepting tokens that live at most `secs`
    /// (`exp - iat`).
    #[must_use]
    pub const fn with_max_lifetime(mut self, secs: u64) -> Self {
        self.max_lifetime_secs = secs;
        self
    }

    /// A verifier trusting the public keys in `paths` (SPKI PEM).
    ///
    /// # Errors
    /// When none is given, or one cannot be read.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self, KeyError> {
        if paths.is_empty() {
            return Err(key_error(
                Path::new("auth_public_keys"),
                "no public key configured: every call would be refused",
            ));
        }
        let keys = paths
            .iter()
            .map(|p| read_verifying_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(&keys))
    }

    /// The claims of the value of an `authorization` metadata entry.
    ///
    /// # Errors
    /// [`TokenError`], saying why.
    pub fn verify_header(&self, value: Option<&str>) -> Result<Claims, TokenError> {
        let value = value.ok_or(TokenError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| TokenError::Malformed("expected `Bearer <token>`".into()))?;
        self.verify(token.trim())
    }

    /// The claims of a token.
    ///
    /// # Errors
    /// [`TokenError`], saying why.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, now_secs())
    }

    /// [`Verifier::verify`] at Unix second `now` for a remembered token (a
    /// new one is checked against the system clock by the JWT crate).
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if let Some(claims) = self.remembered(token) {
            return self.check_claims(check_time(claims, now)?, now);
        }
        let claims = self.verify_signature(token)?;
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_KEPT {
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn remembered(&self, token: &str) -> Option<Claims> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Verifies the token's signature and claims with the JWT crate, then
    /// [`Verifier::check_claims`].
    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::BadSignature);
        }
        let mut last = TokenError::BadSignature;
        for key in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return self.check_claims(data.claims, now_secs()),
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                        ErrorKind::ImmatureSignature => {
                            return Err(TokenError::NotYetValid("nbf is in the future".into()));
                        }
                        ErrorKind::InvalidSignature
                        | ErrorKind::InvalidAlgorithm
                        | ErrorKind::InvalidEddsaKey => TokenError::BadSignature,
                        _ => TokenError::Malformed(e.to_string()),
                    };
                }
            }
        }
        Err(last)
    }

    /// The checks the JWT crate does not make (and that a remembered token
    /// goes through again): `iat` not in the future, a
    /// lifetime within the maximum, a usable subject.
    fn check_claims(&self, claims: Claims, now: u64) -> Result<Claims, TokenError> {
        if claims.iat > now.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid("iat is in the future".into()));
        }
        let lifetime_secs = claims.exp.saturating_sub(claims.iat);
        if lifetime_secs > self.max_lifetime_secs {
            return Err(TokenError::TooLong {
                lifetime_secs,
                max_secs: self.max_lifetime_secs,
            });
        }
        if claims.sub.trim().is_empty() {
            return Err(TokenError::BadSubject("is empty"));
        }
        if claims.sub.chars().count() > MAX_SUBJECT_CHARS {
            return Err(TokenError::BadSubject("is longer than 128 characters"));
        }
        if claims.sub.chars().any(char::is_control) {
            return Err(TokenError::BadSubject("holds control characters"));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn units() -> Vec<String> {
        vec!["vn:31135".to_owned()]
    }

    fn caller(role: Role, units: &[&str]) -> Caller {
        Caller {
            user_id: "u".into(),
            role,
            agency_id: String::new(),
            units: units.iter().map(|u| (*u).to_owned()).collect(),
            purpose: String::new(),
        }
    }

    #[test]
    fn a_province_officer_covers_the_provinces_in_the_token_or_every_unit_without_one() {
        let ninh_kieu = ("vn:31135", &["vn:92"][..]);
        let hoan_kiem = ("vn:00070", &["vn:01"][..]);
        let can_tho = caller(Role::ProvinceOfficer, &["vn:92"]);
        assert!(can_tho.covers_unit(ninh_kieu.0, ninh_kieu.1));
        assert!(!can_tho.covers_unit(hoan_kiem.0, hoan_kiem.1));
        // A 2024 ward of Hậu Giang belongs to Cần Thơ now.
        assert!(can_tho.covers_unit("vn-pre2025:31318", &["vn-pre2025:93", "vn:92"]));
        let single = caller(Role::ProvinceOfficer, &[]);
        assert!(single.covers_unit(hoan_kiem.0, hoan_kiem.1));
        let commune = caller(Role::CommuneOfficer, &["vn:31135"]);
        assert!(commune.covers_unit(ninh_kieu.0, ninh_kieu.1));
        assert!(!commune.covers_unit("vn:31120", &["vn:92"]));
        assert!(!caller(Role::CommuneOfficer, &[]).covers_unit(ninh_kieu.0, ninh_kieu.1));
        assert!(!caller(Role::Police, &["vn:92"]).covers_unit(ninh_kieu.0, ninh_kieu.1));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_verified_afresh() {
        let key = new_signing_key();
        let token = Issuer::new(&key)
            .unwrap()
            .issue("cb-1", Role::CommuneOfficer, "", &units(), 600)
            .unwrap();
        let verifier = Verifier::new(&[key.verifying_key()]);
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(verifier.remembered(&token).as_ref(), Some(&claims));
        assert_eq!(verifier.verify(&token).unwrap(), claims);
        // Past its expiry (and the leeway) the remembered token is refused
        // as it would have been without the memory.
        let later = claims.exp + LEEWAY_SECS + 1;
        assert!(matches!(
            verifier.verify_at(&token, later),
            Err(TokenError::Expired)
        ));
        assert!(verifier.verify_at(&token, claims.exp).is_ok());
        // One character changed in the signed part: not found, verified,
        // refused.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims_part = parts[1].clone().into_bytes();
        claims_part[3] = if claims_part[3] == b'A' { b'B' } else { b'A' };
        parts[1] = String::from_utf8(claims_part).unwrap();
        let forged = parts.join(".");
        assert!(verifier.verify(&forged).is_err());
        assert!(verifier.remembered(&forged).is_none());
        // Clones share what was verified.
        assert!(verifier.clone().remembered(&token).is_some());
    }

    #[test]
    fn a_token_signed_by_a_trusted_key_verifies_with_its_claims() {
        let key = new_signing_key();
        let token = Issuer::new(&key)
            .unwrap()
            .issue("cb-1", Role::CommuneOfficer, "", &units(), 600)
            .unwrap();
        let claims = Verifier::new(&[key.verifying_key()])
            .verify_header(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(claims.sub, "cb-1");
        assert_eq!(claims.role, Role::CommuneOfficer);
        assert_eq!(claims.units, units());
    }

    #[test]
    fn missing_malformed_foreign_and_expired_tokens_are_refused() {
        let key = new_signing_key();
        let other = new_signing_key();
        let verifier = Verifier::new(&[key.verifying_key()]);
        assert_eq!(verifier.verify_header(None), Err(TokenError::Missing));
        assert!(matches!(
            verifier.verify_header(Some("Basic abc")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verifier.verify_header(Some("Bearer not.a.jwt")),
            Err(TokenError::Malformed(_))
        ));
        let foreign = Issuer::new(&other)
            .unwrap()
            .issue("x", Role::Auditor, "", &[], 600)
            .unwrap();
        assert_eq!(verifier.verify(&foreign), Err(TokenError::BadSignature));
        let expired = Issuer::new(&key)
            .unwrap()
            .sign(&Claims {
                sub: "x".into(),
                role: Role::Auditor,
                agency: String::new(),
                units: Vec::new(),
                iat: 1,
                nbf: None,
                exp: 2,
            })
            .unwrap();
        assert_eq!(verifier.verify(&expired), Err(TokenError::Expired));
        // A token whose payload was edited no longer verifies.
        let good = Issuer::new(&key)
            .unwrap()
            .issue("x", Role::HotlineOperator, "", &[], 600)
            .unwrap();
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let forged = Issuer::new(&other)
            .unwrap()
            .issue("x", Role::Auditor, "", &[], 600)
            .unwrap();
        parts[1] = forged.split('.').nth(1).unwrap().to_owned();
        assert_eq!(
            verifier.verify(&parts.join(".")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn key_files_round_trip_and_a_private_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("issuer.pem");
        let public = dir.path().join("issuer.pub.pem");
        let written = generate_key_pair(&private, &public).unwrap();
        assert_eq!(read_verifying_key(&public).unwrap(), written);
        let token = Issuer::from_file(&private)
            .unwrap()
            .issue("a", Role::Auditor, "", &[], 60)
            .unwrap();
        Verifier::from_files(std::slice::from_ref(&public))
            .unwrap()
            .verify(&token)
            .unwrap();
        assert!(generate_key_pair(&private, &public).is_err());
        assert!(Verifier::from_files(&[]).is_err());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&private).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    fn claims(sub: &str, iat: u64, nbf: Option<u64>, exp: u64) -> Claims {
        Claims {
            sub: sub.into(),
            role: Role::Auditor,
            agency: String::new(),
            units: Vec::new(),
            iat,
            nbf,
            exp,
        }
    }

    #[test]
    fn tokens_not_valid_yet_living_too_long_or_without_a_usable_subject_are_refused() {
        let key = new_signing_key();
        let issuer = Issuer::new(&key).unwrap();
        let verifier = Verifier::new(&[key.verifying_key()]);
        let now = now_secs();
        let sign = |c: Claims| issuer.sign(&c).unwrap();
        // nbf an hour ahead.
        assert!(matches!(
            verifier.verify(&sign(claims("x", now, Some(now + 3600), now + 7200))),
            Err(TokenError::NotYetValid(_))
        ));
        // iat an hour ahead.
        assert!(matches!(
            verifier.verify(&sign(claims("x", now + 3600, None, now + 7200))),
            Err(TokenError::NotYetValid(_))
        ));
        // exp in year 9999.
        assert!(matches!(
            verifier.verify(&sign(claims("x", now, None, 253_402_300_799))),
            Err(TokenError::TooLong { .. })
        ));
        // 13 hours: beyond the default 12; accepted where configured.
        let long = sign(claims("x", now, None, now + 13 * 3600));
        assert!(matches!(
            verifier.verify(&long),
            Err(TokenError::TooLong { .. })
        ));
        verifier
            .clone()
            .with_max_lifetime(24 * 3600)
            .verify(&long)
            .unwrap();
        for sub in [
            String::new(),
            "  ".into(),
            "a".repeat(129),
            "a\u{0}b".into(),
        ] {
            assert!(
                matches!(
                    verifier.verify(&sign(claims(&sub, now, None, now + 60))),
                    Err(TokenError::BadSubject(_))
                ),
                "{sub:?}"
            );
        }
        // Within the leeway, and an nbf already past: accepted.
        verifier
            .verify(&sign(claims("x", now + 10, Some(now - 10), now + 60)))
            .unwrap();
    }

    #[test]
    fn generated_private_keys_are_pkcs8_v1_and_v2_keys_are_read_too() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("k.pem");
        generate_key_pair(&private, &dir.path().join("k.pub.pem")).unwrap();
        let pem = std::fs::read_to_string(&private).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        // What `openssl genpkey -algorithm ed25519` writes: 48 bytes,
        // SEQUENCE { INTEGER 0 (v1), AlgorithmIdentifier 1.3.101.112,
        // OCTET STRING { OCTET STRING (32 bytes) } }.
        assert_eq!(der.len(), 48, "{pem}");
        assert_eq!(
            &der[..16],
            &hex::decode("302e020100300506032b657004220420").unwrap()[..]
        );
        // A v2 file (ed25519-dalek's own encoding) still reads.
        let key = read_signing_key(&private).unwrap();
        let v2 = dir.path().join("v2.pem");
        std::fs::write(&v2, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        assert_eq!(read_signing_key(&v2).unwrap().to_bytes(), key.to_bytes());
    }
}
