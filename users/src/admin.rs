//! The admin account. It is created from `admin_email` at start only when
//! no account has that email, or by the operator's `users create-admin`.
//! An existing non-admin account is never made an admin implicitly:
//! whoever registered that address chose its password, so promoting it at
//! a restart would hand them the shop (after the admin renamed their own
//! address, or when the setting names a customer's). Promotion is only
//! ever `users create-admin --promote EMAIL`, an operator's explicit act.

use common::auth::Role;

use crate::domain::{Email, Name, Password, User};
use crate::store::StoreError;
use crate::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyAdmin,
    PasswordReset,
    Promoted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::AlreadyAdmin => "already an admin",
            Outcome::PasswordReset => "already an admin; password reset",
            Outcome::Promoted => "promoted to admin (password unchanged)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("email {0}")]
    Email(String),
    #[error("password {0}")]
    Password(String),
    #[error(
        "{email} belongs to an existing non-admin account ({id}), which is not made an admin \
         implicitly; if that account is yours, promote it with `users create-admin --promote {email}`, \
         otherwise configure another admin email"
    )]
    NotAdmin { email: String, id: String },
    #[error("no account has the email {0}; create an admin with `users create-admin --email {0}`")]
    NoAccount(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`create`] does when the admin exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfAdmin {
    /// The start-up bootstrap: leave it as it is.
    Keep,
    /// The operator's `create-admin --email`: set the given password.
    ResetPassword,
}

/// Creates the admin `email` if no account has that email. An admin with
/// it is kept or gets `password` (per `if_admin`); any other account is
/// refused with [`AdminError::NotAdmin`].
pub async fn create(
    state: &State,
    email: &str,
    password: &str,
    if_admin: IfAdmin,
) -> Result<Outcome, AdminError> {
    let email = Email::parse(email).map_err(AdminError::Email)?;
    let password = Password::parse(password).map_err(AdminError::Password)?;
    if let Some(user) = find(state, &email).await? {
        return existing(state, user, &password, if_admin).await;
    }
    let hash = hash(state, &password).await?;
    let name = Name::parse("Administrator").expect("a constant name is valid");
    match state
        .store
        .create(email.as_str(), name.as_str(), &hash, Role::Admin, None)
        .await
    {
        Ok(_) => Ok(Outcome::Created),
        // Taken a moment ago: by another replica starting (an admin, kept)
        // or by a registration (a customer, refused like any other).
        Err(StoreError::EmailTaken) => match find(state, &email).await? {
            Some(user) => existing(state, user, &password, if_admin).await,
            None => Err(StoreError::EmailTaken.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Makes the existing account `email` an admin, keeping its password.
pub async fn promote(state: &State, email: &str) -> Result<Outcome, AdminError> {
    let email = Email::parse(email).map_err(AdminError::Email)?;
    let user = find(state, &email)
        .await?
        .ok_or_else(|| AdminError::NoAccount(email.as_str().to_string()))?;
    if user.role == Role::Admin {
        return Ok(Outcome::AlreadyAdmin);
    }
    state
        .store
        .update(&user.id, None, None, None, Some(Role::Admin))
        .await?
        .ok_or_else(|| AdminError::NoAccount(email.as_str().to_string()))?;
    // The new role revoked the account's tokens: announce it now.
    state.outbox.notify();
    log::warn!("account {} ({}) promoted to admin", user.id, user.email);
    Ok(Outcome::Promoted)
}

async fn find(state: &State, email: &Email) -> Result<Option<User>, StoreError> {
    Ok(state
        .store
        .credentials(email.as_str())
        .await?
        .map(|c| c.user))
}

async fn existing(
    state: &State,
    user: User,
    password: &Password,
    if_admin: IfAdmin,
) -> Result<Outcome, AdminError> {
    if user.role != Role::Admin {
        return Err(AdminError::NotAdmin {
            email: user.email,
            id: user.id,
        });
    }
    match if_admin {
        IfAdmin::Keep => Ok(Outcome::AlreadyAdmin),
        IfAdmin::ResetPassword => {
            let hash = hash(state, password).await?;
            state
                .store
                .update(&user.id, None, None, Some(&hash), None)
                .await?;
            // The new password revoked the admin's tokens: announce it now.
            state.outbox.notify();
            Ok(Outcome::PasswordReset)
        }
    }
}

async fn hash(state: &State, password: &Password) -> Result<String, AdminError> {
    state
        .hasher
        .hash(password.expose())
        .await
        .map_err(|e| AdminError::Hash(e.to_string()))
}
