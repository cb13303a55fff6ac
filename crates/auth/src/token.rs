use base64::Engine;
use sha2::{Digest, Sha256};

/// API tokens start with this, so they are recognisable in logs and secret scanners.
pub const API_TOKEN_PREFIX: &str = "tgw_";

/// A new API token: the plaintext (shown once) and the SHA-256 hex to store. 256 random bits make a
/// fast hash safe here (no dictionary to attack), unlike passwords.
pub fn new_api_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{API_TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_api_token(&token);
    (token, hash)
}

pub fn hash_api_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (t1, h1) = new_api_token();
        let (t2, _) = new_api_token();
        assert!(t1.starts_with(API_TOKEN_PREFIX));
        assert_ne!(t1, t2);
        assert_eq!(hash_api_token(&t1), h1);
        assert_eq!(h1.len(), 64);
        assert_ne!(hash_api_token(&t2), h1);
    }
}
