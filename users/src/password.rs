//! argon2id hashing with OWASP's parameters (m = 19456 KiB, t = 2, p = 1),
//! off the async threads and bounded, so a burst of logins cannot starve
//! the server or exhaust memory.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    /// Verified when the email is unknown, so both failures take as long.
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        let dummy = hash_now("not-a-real-password").expect("hashing a constant");
        Hasher {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(dummy),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let password = password.to_string();
        // The span covers the hashing only, not the wait for a slot.
        common::telemetry::span("argon2.hash", common::telemetry::Kind::Internal, Vec::new)
            .run(async move {
                tokio::task::spawn_blocking(move || hash_now(&password))
                    .await
                    .map_err(|e| HashError(e.to_string()))?
                    .map_err(|e| HashError(e.to_string()))
            })
            .await
    }

    /// Checks `password` against `hash`; with `None` it checks against a
    /// dummy so an unknown email costs the same time as a wrong password.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash
            .map(str::to_string)
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.to_string();
        let ok =
            common::telemetry::span("argon2.verify", common::telemetry::Kind::Internal, Vec::new)
                .wrap(tokio::task::spawn_blocking(move || {
                    verify_now(&password, &hash)
                }))
                .await
                .unwrap_or(false);
        ok && known
    }
}
