//! One async function per endpoint of the users API.

use std::sync::Arc;

use common::auth::{Claims, Role};
use common::json::{json_response, no_content};
use common::messages::{Message, SendEmail, StatsEvent};
use common::token_versions::{self, TokenVersion};
use common::validate::FromBody;
use common::{ApiError, HandlerResult, Req};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::domain::{parse_id, AccountChanges, Email, Name, NewAccount, Update, User};
use crate::ratelimit::{client_ip, throttled};
use crate::store::{Announcements, Credentials, StoreError};
use crate::State;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => {
                ApiError::conflict("email_taken", "an account with this email already exists")
            }
            StoreError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

fn welcome(user: &User) -> Announcements {
    let email = SendEmail {
        to: user.email.clone(),
        subject: "Welcome to the shop".into(),
        body: format!(
            "Hello {},\n\nyour account is ready. Sign in with {} to start shopping.\n\nThe Shop",
            user.name, user.email
        ),
    };
    vec![
        email.outgoing(),
        StatsEvent::user_registered(&user.id).outgoing(),
    ]
}

/// `POST /user/`
pub async fn register(state: Arc<State>, mut req: Req) -> HandlerResult {
    // Before any work: each registration costs an argon2 hash and an email.
    let ip = state
        .config
        .trusted_proxies
        .with(|t| client_ip(req.peer, req.headers(), t));
    if let Err(wait) = state.registrations.check(&ip) {
        log::warn!("registration throttled for client {ip}");
        return Err(throttled(
            wait,
            "too many registrations from this address; try again later",
        ));
    }
    let NewAccount {
        email,
        password,
        name,
    } = req.body().await?;
    let hash = state
        .hasher
        .hash(password.expose())
        .await
        .map_err(ApiError::internal)?;
    let user = state
        .store
        .create(
            email.as_str(),
            name.as_str(),
            &hash,
            Role::Customer,
            Some(&welcome),
        )
        .await?;
    state.outbox.notify();
    log::info!("registered user {}", user.id);
    Ok(json_response(StatusCode::CREATED, &user))
}

/// `POST /user/login`
pub async fn login(state: Arc<State>, mut req: Req) -> HandlerResult {
    let body: Login = req.json().await?;
    let ip = state
        .config
        .trusted_proxies
        .with(|t| client_ip(req.peer, req.headers(), t));
    let email_key = body.email.trim().to_lowercase();
    if let Err(wait) = state.limiter.check(&email_key, ip) {
        log::warn!("login throttled for client {ip}");
        return Err(throttled(wait, "too many login attempts; try again later"));
    }
    // An address that does not parse (a NUL, which PostgreSQL refuses as a
    // parameter; a Kelvin sign that lower-cases to another account's `k`)
    // belongs to no account: the same answer as any unknown email.
    let creds = match Email::parse(&body.email) {
        Ok(email) => state.store.credentials(email.as_str()).await?,
        Err(_) => None,
    };
    let ok = state
        .hasher
        .verify(
            &body.password,
            creds.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await;
    let creds = match creds {
        Some(c) if ok => c,
        // One answer for an unknown email and a wrong password.
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the email or password is wrong",
            ))
        }
    };
    let (token, exp) = state.keys.issue_for(
        &creds.user.id,
        creds.user.role,
        &creds.user.email,
        creds.token_version,
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({"token": token, "user_id": creds.user.id, "expires_at": common::time::rfc3339(exp * 1000)}),
    ))
}

/// The caller of a request on `{id}`, and the target id.
struct Caller {
    claims: Claims,
    account: Credentials,
    target: Option<String>,
}

impl Caller {
    /// Whether the caller acts on their own account.
    fn is_target(&self) -> bool {
        self.target.as_deref() == Some(self.claims.sub.as_str())
    }
}

/// Authenticates the caller against their account as stored here — a
/// deleted account or a token older than the account's token version is
/// `401` at once — and checks they may act on `{id}`.
async fn authorize(state: &State, req: &Req) -> Result<Caller, ApiError> {
    let claims = state.keys.authenticate(req.headers())?;
    let account = state
        .store
        .credentials_by_id(&claims.sub)
        .await?
        .ok_or_else(token_versions::account_gone)?;
    TokenVersion {
        user_id: claims.sub.clone(),
        version: account.token_version,
        deleted: false,
    }
    .admits(&claims)?;
    let raw = req.param("id");
    claims.require_self_or_admin(raw)?;
    Ok(Caller {
        account,
        target: parse_id(raw),
        claims,
    })
}

/// A change of one's own email or password needs the current password, so
/// a stolen token cannot take the account over: `403`
/// `current_password_required` without it, `403` `invalid_credentials`
/// when wrong. Attempts count against the login limits of the account.
async fn confirm_current_password(
    state: &State,
    req: &Req,
    caller: &Caller,
    given: Option<&str>,
) -> Result<(), ApiError> {
    let Some(given) = given else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "current_password_required",
            "changing your own email or password needs your current password in `current_password`",
        ));
    };
    let ip = state
        .config
        .trusted_proxies
        .with(|t| client_ip(req.peer, req.headers(), t));
    if let Err(wait) = state
        .limiter
        .check(&caller.account.user.email.to_lowercase(), ip)
    {
        return Err(throttled(
            wait,
            "too many password attempts; try again later",
        ));
    }
    if !state
        .hasher
        .verify(given, Some(&caller.account.password_hash))
        .await
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    Ok(())
}

/// `GET /user/{id}`
pub async fn get(state: Arc<State>, req: Req) -> HandlerResult {
    let id = authorize(&state, &req).await?.target;
    let id = id.ok_or_else(|| ApiError::not_found("user"))?;
    let user = state
        .store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(json_response(StatusCode::OK, &user))
}

/// `PUT /user/{id}`: partial update of name, email and password. A new
/// password revokes the account's tokens (users' store bumps its version).
pub async fn update(state: Arc<State>, mut req: Req) -> HandlerResult {
    let caller = authorize(&state, &req).await?;
    // The body's shape is checked before the id, its fields after.
    let body: Update = req.json().await?;
    let id = caller
        .target
        .clone()
        .ok_or_else(|| ApiError::not_found("user"))?;
    let AccountChanges {
        email,
        password,
        name,
        current_password,
    } = AccountChanges::check(body)?;
    if caller.is_target() && (email.is_some() || password.is_some()) {
        confirm_current_password(&state, &req, &caller, current_password.as_deref()).await?;
    }
    let hash = match password {
        Some(p) => Some(
            state
                .hasher
                .hash(p.expose())
                .await
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let user = state
        .store
        .update(
            &id,
            email.as_ref().map(Email::as_str),
            name.as_ref().map(Name::as_str),
            hash.as_deref(),
            None,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // A revocation may be waiting in the outbox.
    state.outbox.notify();
    Ok(json_response(StatusCode::OK, &user))
}

/// `DELETE /user/{id}`: also revokes the account's tokens everywhere.
pub async fn delete(state: Arc<State>, req: Req) -> HandlerResult {
    let id = authorize(&state, &req).await?.target;
    let id = id.ok_or_else(|| ApiError::not_found("user"))?;
    if !state.store.delete(&id).await? {
        return Err(ApiError::not_found("user"));
    }
    state.outbox.notify();
    log::info!("deleted user {id}");
    Ok(no_content())
}
