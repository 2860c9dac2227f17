//! Token revocation across services: each account's current token version.
//!
//! Tokens are verified locally with the shared secret, so without more a
//! token would stay good for its whole lifetime. Users therefore keeps a
//! version per account, puts it into every token it issues (the `ver`
//! claim), and bumps it in the same transaction as a change that must end
//! the account's sessions (deletion, a new password, a new role). That
//! transaction also writes one [`TokenVersion`] message per verifying
//! service into its outbox ([`announce`]); each verifying service stores
//! it in its own `token_versions` table ([`TokenVersions::receive`]) and
//! refuses a token whose version is older, or whose account is recorded
//! deleted ([`TokenVersions::check`]).
//!
//! The table is in the service's database, which its replicas share, and
//! it is read on every check (one primary-key lookup, no cache), so a
//! revocation recorded by one replica is enforced by all at once and
//! survives restarts. Recording is an upsert that never lowers a version
//! nor undeletes an account, so redelivered or reordered messages are
//! harmless. Accounts never revoked have no row and count as version 0,
//! as do tokens issued before versions existed.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::auth::{require_internal, Claims, TokenKeys};
use crate::db::Db;
use crate::error::ApiError;
use crate::json::json_response;
use crate::request::Req;
use crate::router::HandlerResult;
use crate::time::now_ms;
use crate::validate::{all, field, FromBody};

/// The internal endpoint of every verifying service that receives
/// [`TokenVersion`] messages.
pub const PATH: &str = "/internal/token-versions";

/// An account's token version as users announces it and verifying
/// services store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVersion {
    pub user_id: String,
    /// Tokens with a lower `ver` are refused.
    pub version: i64,
    /// The account is deleted: all its tokens are refused.
    #[serde(default)]
    pub deleted: bool,
}

impl FromBody for TokenVersion {
    type Raw = TokenVersion;

    fn check(raw: TokenVersion) -> Result<TokenVersion, ApiError> {
        let user_id = field(
            "user_id",
            if !raw.user_id.is_empty() && raw.user_id.len() <= 100 && !raw.user_id.contains('\0') {
                Ok(raw.user_id)
            } else {
                Err("must be 1 to 100 characters without NUL".into())
            },
        );
        let version = field(
            "version",
            if raw.version >= 0 {
                Ok(raw.version)
            } else {
                Err("must not be negative".into())
            },
        );
        let (user_id, version) = all((user_id, version))?;
        Ok(TokenVersion {
            user_id,
            version,
            deleted: raw.deleted,
        })
    }
}

/// Writes `update` for each of `targets` (outbox target names) into the
/// outbox, in the caller's transaction.
pub async fn announce(
    conn: &mut AnyConnection,
    targets: &[&str],
    update: &TokenVersion,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(update).expect("a plain struct serializes");
    for target in targets {
        crate::outbox::enqueue(&mut *conn, target, PATH, &payload).await?;
    }
    Ok(())
}

/// `401` for a token whose account is deleted.
pub fn account_gone() -> ApiError {
    ApiError::unauthorized("the account of this token no longer exists")
}

impl TokenVersion {
    /// `401` unless `claims` is at least this version of a live account.
    /// The one rule, also for users, which reads its own accounts.
    pub fn admits(&self, claims: &Claims) -> Result<(), ApiError> {
        if self.deleted {
            return Err(account_gone());
        }
        if claims.ver < self.version {
            return Err(ApiError::unauthorized(
                "the token has been revoked (its password or role changed); log in again",
            ));
        }
        Ok(())
    }
}

/// A verifying service's record of token versions, in its own database.
#[derive(Debug, Clone)]
pub struct TokenVersions {
    db: Db,
}

impl TokenVersions {
    pub fn new(db: Db) -> Self {
        TokenVersions { db }
    }

    /// The recorded state of `user_id`: version 0 and live when none is.
    pub async fn get(&self, user_id: &str) -> Result<TokenVersion, sqlx::Error> {
        let row = sqlx::query("SELECT version, deleted_at FROM token_versions WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(TokenVersion {
            user_id: user_id.to_string(),
            version: row.as_ref().map_or(0, |r| r.get("version")),
            deleted: row
                .as_ref()
                .is_some_and(|r| r.get::<Option<i64>, _>("deleted_at").is_some()),
        })
    }

    /// `401` when the token's account has a newer version or is deleted.
    pub async fn check(&self, claims: &Claims) -> Result<(), ApiError> {
        self.get(&claims.sub).await?.admits(claims)
    }

    /// Stores `update` monotonically — a lower version than the stored one
    /// is ignored and a deletion is permanent — and returns what is stored.
    pub async fn record(&self, update: &TokenVersion) -> Result<TokenVersion, sqlx::Error> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO token_versions (user_id, version, deleted_at, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET \
               version = CASE WHEN excluded.version > token_versions.version \
                              THEN excluded.version ELSE token_versions.version END, \
               deleted_at = COALESCE(token_versions.deleted_at, excluded.deleted_at), \
               updated_at = excluded.updated_at \
             RETURNING version, deleted_at",
        )
        .bind(&update.user_id)
        .bind(update.version)
        .bind(update.deleted.then_some(now))
        .bind(now)
        .fetch_one(&mut *self.db.writer().await?)
        .await?;
        Ok(TokenVersion {
            user_id: update.user_id.clone(),
            version: row.get("version"),
            deleted: row.get::<Option<i64>, _>("deleted_at").is_some(),
        })
    }

    /// `POST /internal/token-versions` (internal credentials): records the
    /// body's [`TokenVersion`] and answers `200` with what is stored now.
    pub async fn receive(
        &self,
        mut req: Req,
        internal_key: &str,
        keys: &TokenKeys,
    ) -> HandlerResult {
        require_internal(req.headers(), internal_key, keys)?;
        let update: TokenVersion = req.body().await?;
        let stored = self.record(&update).await?;
        log::info!(
            "tokens of user {} below version {} are refused{}",
            stored.user_id,
            stored.version,
            if stored.deleted {
                "; the account is deleted"
            } else {
                ""
            }
        );
        Ok(json_response(http::StatusCode::OK, &stored))
    }
}
