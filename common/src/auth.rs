//! Bearer tokens and internal credentials.
//!
//! User tokens are HS256 JWTs carrying the user id, role and expiry, signed
//! with the shop's token secret, so every service verifies them locally
//! without calling users. Internal endpoints take a different credential:
//! a shared internal key, which is never a user token.
//!
//! A token also carries its account's token version (`ver`): users bumps
//! the version when the account is deleted, its password changes or its
//! role changes, and [`TokenKeys::authenticate_current`] refuses a token
//! whose version is older than the one the service has on record (see
//! [`crate::token_versions`]).

use http::header::AUTHORIZATION;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::token_versions::TokenVersions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// The account's email at login, so services that write to the user
    /// (order confirmations) need not call users for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The account's token version when the token was issued. Tokens from
    /// before versions existed have none and count as version 0, the
    /// version every account starts with.
    #[serde(default)]
    pub ver: i64,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `403` unless the bearer is `user_id` or an admin.
    pub fn require_self_or_admin(&self, user_id: &str) -> Result<(), ApiError> {
        if self.sub == user_id || self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this token may not act on another user's resources",
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("an admin token is required"))
        }
    }
}

/// Signs and verifies user tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

/// Shortest secret accepted: 32 bytes, the HS256 key size.
pub const MIN_SECRET_LEN: usize = 32;

impl TokenKeys {
    pub fn new(secret: &str, ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Clock skew between services on one host is small; a short leeway
        // keeps expiry meaningful.
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl_secs,
        }
    }

    /// A token for `user_id` valid for the configured lifetime; returns the
    /// token and its expiry in seconds since the epoch.
    pub fn issue(&self, user_id: &str, role: Role) -> (String, i64) {
        let now = crate::time::now_ms() / 1000;
        self.issue_with(user_id, role, now, now + self.ttl_secs)
    }

    /// A login token: like [`issue`](Self::issue), carrying the account's
    /// email and its current token version.
    pub fn issue_for(&self, user_id: &str, role: Role, email: &str, version: i64) -> (String, i64) {
        let now = crate::time::now_ms() / 1000;
        self.sign(Claims {
            sub: user_id.to_string(),
            role,
            exp: now + self.ttl_secs,
            iat: now,
            email: Some(email.to_string()),
            ver: version,
        })
    }

    /// A token with explicit times; tests use it to make expired tokens.
    pub fn issue_with(&self, user_id: &str, role: Role, iat: i64, exp: i64) -> (String, i64) {
        self.sign(Claims {
            sub: user_id.to_string(),
            role,
            exp,
            iat,
            email: None,
            ver: 0,
        })
    }

    fn sign(&self, claims: Claims) -> (String, i64) {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, claims.exp)
    }

    /// Verifies signature, algorithm and expiry; any failure is `401`.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| {
                // Logged with every line of this request from now on.
                crate::request_context::set_user_id(&data.claims.sub);
                data.claims
            })
            .map_err(|e| {
                let detail = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    _ => "the token is invalid",
                };
                ApiError::unauthorized(detail)
            })
    }

    /// The bearer's claims, or `401` when the token is missing or bad.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let token =
            bearer(headers).ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        self.verify(token)
    }

    /// The bearer's claims when the token is valid and not revoked: `401`
    /// also when `versions` records a newer token version for the account,
    /// or the account's deletion. Every service but users (which reads its
    /// own accounts) authenticates users this way.
    pub async fn authenticate_current(
        &self,
        headers: &HeaderMap,
        versions: &TokenVersions,
    ) -> Result<Claims, ApiError> {
        let claims = self.authenticate(headers)?;
        versions.check(&claims).await?;
        Ok(claims)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Constant-time comparison, so a key cannot be guessed byte by byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Checks the internal credential of service-to-service calls.
///
/// Missing or unknown credentials are `401`; a valid *user* token is `403`
/// (it is a real credential, just not one that may call this).
pub fn require_internal(
    headers: &HeaderMap,
    internal_key: &str,
    keys: &TokenKeys,
) -> Result<(), ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized("internal credentials are required"));
    };
    if constant_time_eq(token.as_bytes(), internal_key.as_bytes()) {
        return Ok(());
    }
    if keys.verify(token).is_ok() {
        return Err(ApiError::forbidden(
            "user tokens may not call internal endpoints",
        ));
    }
    Err(ApiError::unauthorized("internal credentials are invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn issued_tokens_verify() {
        let keys = TokenKeys::new(SECRET, 3600);
        let (token, exp) = keys.issue("u1", Role::Admin);
        let claims = keys
            .authenticate(&headers(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp, exp);
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_401() {
        let keys = TokenKeys::new(SECRET, 3600);
        let (token, _) = keys.issue("u1", Role::Customer);
        // Flip the role inside the payload but keep the old signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64_url(br#"{"sub":"u1","role":"admin","exp":9999999999,"iat":1}"#);
        parts[1] = &forged;
        let e = keys.verify(&parts.join(".")).unwrap_err();
        assert_eq!(e.status, 401);

        let now = crate::time::now_ms() / 1000;
        let (old, _) = keys.issue_with("u1", Role::Customer, now - 7200, now - 3600);
        assert_eq!(
            keys.verify(&old).unwrap_err().detail,
            "the token has expired"
        );

        let other = TokenKeys::new("another-secret-another-secret-xx", 3600);
        let (foreign, _) = other.issue("u1", Role::Customer);
        assert_eq!(keys.verify(&foreign).unwrap_err().status, 401);

        // alg=none: a header claiming no signature must be refused.
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(keys.verify(&none).unwrap_err().status, 401);
    }

    #[test]
    fn tokens_from_before_versions_count_as_version_0() {
        let keys = TokenKeys::new(SECRET, 3600);
        let now = crate::time::now_ms() / 1000;
        // What users signed before the `ver` claim existed.
        let legacy = serde_json::json!({
            "sub": "u1", "role": "customer", "exp": now + 60, "iat": now, "email": "a@b.example"
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &legacy,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify(&token).unwrap().ver, 0);
        let (current, _) = keys.issue_for("u1", Role::Customer, "a@b.example", 7);
        assert_eq!(keys.verify(&current).unwrap().ver, 7);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn internal_credentials_are_distinct_from_user_tokens() {
        let keys = TokenKeys::new(SECRET, 3600);
        let key = "internal-key-internal-key-intern";
        assert!(require_internal(&headers(&format!("Bearer {key}")), key, &keys).is_ok());
        assert_eq!(
            require_internal(&HeaderMap::new(), key, &keys)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            require_internal(&headers("Bearer wrong"), key, &keys)
                .unwrap_err()
                .status,
            401
        );
        let (user, _) = keys.issue("u1", Role::Admin);
        assert_eq!(
            require_internal(&headers(&format!("Bearer {user}")), key, &keys)
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn self_or_admin() {
        let c = Claims {
            sub: "a".into(),
            role: Role::Customer,
            exp: 0,
            iat: 0,
            email: None,
            ver: 0,
        };
        assert!(c.require_self_or_admin("a").is_ok());
        assert_eq!(c.require_self_or_admin("b").unwrap_err().status, 403);
        let admin = Claims {
            role: Role::Admin,
            ..c
        };
        assert!(admin.require_self_or_admin("b").is_ok());
    }

    fn base64_url(data: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }
}
