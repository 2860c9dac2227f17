//! All SQL of the users service.

use common::auth::Role;
use common::db::{is_unique_violation, Db};
use common::messages::Outgoing;
use common::time::{now_ms, rfc3339};
use common::token_versions::{announce, TokenVersion};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::User;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the email is already registered")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// An account with its hash and token version, for login and for
/// checking a token's bearer.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
    pub token_version: i64,
}

/// The outbox targets that verify tokens and must hear of each new token
/// version (see `common::token_versions`).
pub const TOKEN_VERIFIERS: &[&str] = &["products", "cart"];

/// Tells every token verifier, in the caller's transaction, that tokens of
/// `user_id` below `version` are revoked (all of them when `deleted`).
async fn announce_version(
    conn: &mut AnyConnection,
    user_id: &str,
    version: i64,
    deleted: bool,
) -> Result<(), sqlx::Error> {
    let update = TokenVersion {
        user_id: user_id.to_string(),
        version,
        deleted,
    };
    announce(conn, TOKEN_VERIFIERS, &update).await
}

/// What a new account announces (its welcome email and registration
/// event), written to the outbox in the same transaction as the account.
pub type Announcements = Vec<Outgoing>;

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

const USER_COLUMNS: &str = "id, email, name, role, created_at, password_hash";

fn user_from_row(row: &AnyRow) -> User {
    let role: String = row.get("role");
    User {
        id: row.get("id"),
        email: row.get("email"),
        name: row.get("name"),
        // Only this service writes the column, always from a Role.
        role: Role::parse(&role).unwrap_or(Role::Customer),
        created_at: rfc3339(row.get::<i64, _>("created_at")),
    }
}

fn map_unique(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::EmailTaken
    } else {
        StoreError::Db(e)
    }
}

impl Store {
    /// Inserts an account and, in the same transaction, what it announces.
    pub async fn create(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
        announce: Option<&(dyn Fn(&User) -> Announcements + Sync)>,
    ) -> Result<User, StoreError> {
        common::telemetry::db("TRANSACTION", "users")
            .run(async move {
            let id = uuid::Uuid::now_v7().to_string();
            let now = now_ms();
            let mut tx = self.db.begin_write().await?;
            sqlx::query(
                "INSERT INTO users (id, email, email_lower, name, password_hash, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(email)
            .bind(email.to_lowercase())
            .bind(name)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
            let user = User {
                id,
                email: email.to_string(),
                name: name.to_string(),
                role,
                created_at: rfc3339(now),
            };
            if let Some(announce) = announce {
                for message in announce(&user) {
                    message.enqueue(&mut tx).await?;
                }
            }
            tx.commit().await?;
            Ok(user)
            })
            .await
    }

    /// A live account by id.
    pub async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        common::telemetry::db("SELECT", "users")
            .run(async move {
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
                ))
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
                Ok(row.as_ref().map(user_from_row))
            })
            .await
    }

    /// A live account and its hash by email, case-insensitively.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where("email_lower", &email.to_lowercase())
            .await
    }

    /// A live account and its hash by id.
    pub async fn credentials_by_id(&self, id: &str) -> Result<Option<Credentials>, StoreError> {
        self.credentials_where("id", id).await
    }

    async fn credentials_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        common::telemetry::db("SELECT", "users")
            .run(async move {
            let row = sqlx::query(&format!(
                "SELECT {USER_COLUMNS}, token_version FROM users WHERE {column} = $1 AND deleted_at IS NULL"
            ))
            .bind(value)
            .fetch_optional(&self.db.pool)
            .await?;
            Ok(row.map(|r| Credentials {
                user: user_from_row(&r),
                password_hash: r.get("password_hash"),
                token_version: r.get("token_version"),
            }))
            })
            .await
    }

    /// Applies the given changes to a live account; `None` if it is gone.
    /// A new password, email or role bumps the token version and announces
    /// it, in the same transaction.
    pub async fn update(
        &self,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        password_hash: Option<&str>,
        role: Option<Role>,
    ) -> Result<Option<User>, StoreError> {
        common::telemetry::db("TRANSACTION", "users")
            .run(async move {
                let mut tx = self.db.begin_write().await?;
                let Some(current) =
                    sqlx::query("SELECT role FROM users WHERE id = $1 AND deleted_at IS NULL")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                else {
                    return Ok(None);
                };
                let role_changes =
                    role.is_some_and(|r| r.as_str() != current.get::<String, _>("role"));
                // A new email revokes too: tokens carry the email (order
                // confirmations go to it), and a stale one must not outlive it.
                let revokes = password_hash.is_some() || email.is_some() || role_changes;
                // One conditional UPDATE: COALESCE keeps columns the caller left out,
                // so concurrent partial updates of different fields never undo each
                // other, and the version is incremented by the database, so two
                // concurrent revocations make two versions.
                let row = sqlx::query(
                    "UPDATE users SET \
                   email = COALESCE($1, email), email_lower = COALESCE($2, email_lower), \
                   name = COALESCE($3, name), password_hash = COALESCE($4, password_hash), \
                   role = COALESCE($5, role), updated_at = $6, token_version = token_version + $7 \
                 WHERE id = $8 AND deleted_at IS NULL \
                 RETURNING token_version",
                )
                .bind(email)
                .bind(email.map(str::to_lowercase))
                .bind(name)
                .bind(password_hash)
                .bind(role.map(Role::as_str))
                .bind(now_ms())
                .bind(i64::from(revokes))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_unique)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                if revokes {
                    announce_version(&mut tx, id, row.get("token_version"), false).await?;
                }
                tx.commit().await?;
                self.get(id).await
            })
            .await
    }

    /// Erases an account's personal data and marks it deleted; its email
    /// becomes free to register again, and its tokens are revoked (the
    /// deletion is announced in the same transaction). `false` if it was
    /// already gone.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        common::telemetry::db("TRANSACTION", "users")
            .run(async move {
            let mut tx = self.db.begin_write().await?;
            let row = sqlx::query(
                "UPDATE users SET email = '', email_lower = 'deleted:' || id, name = '', password_hash = '', \
                   deleted_at = $1, updated_at = $1, token_version = token_version + 1 \
                 WHERE id = $2 AND deleted_at IS NULL \
                 RETURNING token_version",
            )
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            announce_version(&mut tx, id, row.get("token_version"), true).await?;
            tx.commit().await?;
            Ok(true)
            })
            .await
    }
}
