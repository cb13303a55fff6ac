use base64::Engine;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Username.
    pub sub: String,
    pub roles: Vec<String>,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Token id: lets a session be revoked.
    pub jti: String,
}

/// The per-install signing secret.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

const ISSUER_ALG: Algorithm = Algorithm::HS256;

impl SessionKeys {
    /// A fresh random 256-bit secret, base64 (store it; every session depends on it).
    pub fn generate_secret() -> String {
        let bytes: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn from_secret(secret_b64: &str) -> Result<SessionKeys, AuthError> {
        let secret =
            base64::engine::general_purpose::STANDARD.decode(secret_b64.trim()).map_err(|_| AuthError::InvalidToken)?;
        if secret.len() < 32 {
            return Err(AuthError::Hash("session secret must be at least 256 bits".into()));
        }
        Ok(SessionKeys { encoding: EncodingKey::from_secret(&secret), decoding: DecodingKey::from_secret(&secret) })
    }

    /// Issues a session for `user` valid for `ttl_secs` from `now` (unix seconds).
    pub fn issue(&self, user: &str, roles: &[String], now: u64, ttl_secs: u64) -> Result<(String, Claims), AuthError> {
        let jti: [u8; 16] = rand::random();
        let claims = Claims {
            sub: user.to_string(),
            roles: roles.to_vec(),
            iat: now,
            exp: now + ttl_secs,
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        };
        let token =
            encode(&Header::new(ISSUER_ALG), &claims, &self.encoding).map_err(|e| AuthError::Hash(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies signature (HS256 only), expiry (no leeway) and shape.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(ISSUER_ALG);
        v.leeway = 0;
        v.validate_exp = true;
        v.set_required_spec_claims(&["exp", "sub", "iat"]);
        decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|_| AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn keys() -> SessionKeys {
        SessionKeys::from_secret(&SessionKeys::generate_secret()).unwrap()
    }

    #[test]
    fn issue_and_verify() {
        let k = keys();
        let (t, c) = k.issue("admin", &["admin".into()], now(), 900).unwrap();
        assert_eq!(k.verify(&t).unwrap(), c);
    }

    #[test]
    fn expired_forged_and_alg_none_are_refused() {
        let k = keys();
        let (expired, _) = k.issue("admin", &[], now() - 3600, 60).unwrap();
        assert_eq!(k.verify(&expired), Err(AuthError::InvalidToken));
        // Signed with another install's secret.
        let (other, _) = keys().issue("admin", &["admin".into()], now(), 900).unwrap();
        assert_eq!(k.verify(&other), Err(AuthError::InvalidToken));
        // alg: none with the same claims.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = format!(r#"{{"sub":"admin","roles":["admin"],"exp":{},"iat":{},"jti":"x"}}"#, now() + 900, now());
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert_eq!(k.verify(&none), Err(AuthError::InvalidToken));
        // A tampered payload with the original signature.
        let (good, _) = k.issue("viewer", &["viewer".into()], now(), 900).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = b64(&claims);
        parts[1] = &forged_payload;
        assert_eq!(k.verify(&parts.join(".")), Err(AuthError::InvalidToken));
    }

    #[test]
    fn short_secrets_are_refused() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 8]);
        assert!(SessionKeys::from_secret(&short).is_err());
    }
}
