//! argon2id hashing with OWASP's parameters (m = 19456 KiB, t = 2, p = 1),
//! off the async threads and bounded, so a burst of logins cannot starve
//! the server or exhaust memory.
//!
//! Each hash allocates and frees a 19 MiB work area. glibc's malloc, left to
//! itself, raises its mmap threshold after the first such free and from then
//! on carves the work areas out of its per-thread arenas, which keep them:
//! every blocking thread that ever hashed held 19 MiB, and `bench/shop.sh`
//! saw users peak at 460 MiB RSS. [`return_work_areas_to_the_os`] pins the
//! threshold so work areas are always mapped and unmapped: users' memory is
//! bounded by `hash_concurrency` work areas and falls back after a burst.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
}

/// Verified when the email is unknown, so both failures take as long: an
/// argon2id hash with the same parameters as [`argon2`] (a test holds them
/// equal). It is a constant rather than hashed at start-up because hashing
/// costs 19 MiB and tens of milliseconds of every start of users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$GMalByzaRrNKuKFkaQCdtg$/vm0l4A8V7BtWPb2B163EvjLWATOqi/X5w+g04vF/iw";

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

/// Pins glibc's mmap threshold at 1 MiB (once per process), so that every
/// allocation that large — argon2's work areas, nothing on the request path
/// comes near — is its own mapping, returned to the OS when freed.
fn return_work_areas_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static PIN: std::sync::Once = std::sync::Once::new();
        PIN.call_once(|| {
            // SAFETY: mallopt only sets a malloc tunable; it is called once,
            // before the hasher exists, and touches no Rust-owned memory.
            let pinned = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
            if pinned != 1 {
                log::warn!(
                    "could not pin malloc's mmap threshold: argon2's work areas may stay resident"
                );
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    pub fn new(concurrency: usize) -> Self {
        return_work_areas_to_the_os();
        Hasher {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
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
        let hash = hash.unwrap_or(DUMMY_HASH).to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy is a PHC string");
        let real_hash = hash_now("a password").expect("hashing");
        let real = PasswordHash::new(&real_hash).expect("a PHC string");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        let (dummy, real) = (
            Params::try_from(&dummy).expect("dummy parameters"),
            Params::try_from(&real).expect("real parameters"),
        );
        let cost = |p: &Params| (p.m_cost(), p.t_cost(), p.p_cost(), p.output_len());
        assert_eq!(cost(&dummy), cost(&real));
    }

    #[test]
    fn the_dummy_hash_is_a_hash_of_its_password() {
        assert!(verify_now("not-a-real-password", DUMMY_HASH));
        assert!(!verify_now("anything else", DUMMY_HASH));
    }
}
