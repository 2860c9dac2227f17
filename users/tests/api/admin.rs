//! The admin account is never handed to whoever holds the configured
//! address: the bootstrap at start creates it only when no account has the
//! email, and promoting an existing account is only `users create-admin
//! --promote`, run as an operator runs it (the real binary, on the test's
//! database).

use std::time::Duration;

use common::auth::Role;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::support::{spawn_app, spawn_with, TestApp};

const ADMIN: (&str, &str) = ("admin@example.com", "admin password");

/// What a finished run of the binary printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Exit 0 with `says` on standard output.
    fn succeeded(&self, says: &str) {
        assert!(
            self.code == Some(0) && self.stdout.contains(says),
            "expected success saying {says:?}: {self:?}"
        );
    }

    /// A non-zero exit with `says` on standard error.
    fn failed(&self, says: &str) {
        assert!(
            self.code != Some(0) && self.stderr.contains(says),
            "expected failure saying {says:?}: {self:?}"
        );
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n{}{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the `users` binary on `app`'s database with `args`, extra `env`
/// and `input` on standard input, to its end: one that keeps serving
/// instead fails the test.
async fn run(app: &TestApp, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Run {
    use std::process::Stdio;
    let mut child = app
        .binary()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the users binary");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).await.expect("writing to its stdin");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the users binary exits instead of serving")
        .expect("waiting for the users binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn with_admin(app: TestApp) -> impl std::future::Future<Output = TestApp> {
    app.restart_with(|c| c.admin = Some((ADMIN.0.into(), ADMIN.1.into())))
}

#[tokio::test]
async fn a_customer_holding_the_admin_email_is_not_promoted_at_start() {
    let app = spawn_app().await;
    // Registered before the operator's restart, in another case.
    app.register_ok("Admin@Example.com", "attacker password", "Mallory")
        .await;
    let app = with_admin(app).await;
    assert_eq!(
        app.role_of("admin@example.com", "attacker password").await,
        Some(Role::Customer),
        "the registrant stays a customer"
    );
    assert_eq!(app.role_of(ADMIN.0, ADMIN.1).await, None);
    // And again at the next start: still refused, still serving.
    let app = app.restart().await;
    assert_eq!(
        app.role_of("admin@example.com", "attacker password").await,
        Some(Role::Customer)
    );
}

#[tokio::test]
async fn an_admin_who_renames_their_email_does_not_pass_it_on() {
    let app = spawn_with(|c| c.admin = Some((ADMIN.0.into(), ADMIN.1.into()))).await;
    let login: serde_json::Value = app.login(ADMIN.0, ADMIN.1).await.json().await.unwrap();
    let (id, token) = (
        login["user_id"].as_str().unwrap().to_string(),
        login["token"].as_str().unwrap().to_string(),
    );
    let renamed = app
        .put_json(
            &format!("/user/{id}"),
            Some(&token),
            &json!({"email": "boss@example.com", "current_password": ADMIN.1}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    app.register_ok("ADMIN@example.com", "attacker password", "Mallory")
        .await;
    let app = app.restart().await;
    assert_eq!(
        app.role_of("admin@example.com", "attacker password").await,
        Some(Role::Customer)
    );
    assert_eq!(
        app.role_of("boss@example.com", ADMIN.1).await,
        Some(Role::Admin)
    );
}

#[tokio::test]
async fn an_existing_admin_keeps_its_password_at_start() {
    let app = spawn_with(|c| c.admin = Some((ADMIN.0.into(), ADMIN.1.into()))).await;
    let app = app
        .restart_with(|c| c.admin = Some((ADMIN.0.into(), "another password".into())))
        .await;
    assert_eq!(app.role_of(ADMIN.0, ADMIN.1).await, Some(Role::Admin));
    assert_eq!(app.role_of(ADMIN.0, "another password").await, None);
}

#[tokio::test]
async fn admin_strict_stops_the_start_on_that_conflict() {
    let app = spawn_app().await;
    app.register_ok("boss@example.com", "attacker password", "Mallory")
        .await;
    let env = [
        ("SHOP_ADMIN_EMAIL", "Boss@Example.com"),
        ("SHOP_ADMIN_PASSWORD", ADMIN.1),
        ("USERS_ADMIN_STRICT", "true"),
    ];
    let out = run(&app, &[], &env, b"").await;
    out.failed("boss@example.com belongs to an existing non-admin account");
    out.failed("users create-admin --promote boss@example.com");
    assert_eq!(out.code, Some(78), "the configuration exit code");
    assert_eq!(
        app.role_of("boss@example.com", "attacker password").await,
        Some(Role::Customer)
    );
}

#[tokio::test]
async fn only_create_admin_promote_makes_a_customer_an_admin() {
    let app = spawn_app().await;
    app.register_ok("carol@example.com", "carol password", "Carol")
        .await;

    // --email does not take the account over, nor reset its password.
    let create = ["create-admin", "--email", "Carol@Example.com"];
    let password = [("SHOP_ADMIN_PASSWORD", "operator password")];
    run(&app, &create, &password, b"")
        .await
        .failed("--promote carol@example.com");
    assert_eq!(
        app.role_of("carol@example.com", "operator password").await,
        None
    );

    // --promote does, keeping Carol's password; the start-up bootstrap
    // (strict, naming the same address) does not get in its way.
    let strict = [
        ("SHOP_ADMIN_EMAIL", "carol@example.com"),
        ("SHOP_ADMIN_PASSWORD", "operator password"),
        ("USERS_ADMIN_STRICT", "true"),
    ];
    let promote = ["create-admin", "--promote", "carol@example.com"];
    run(&app, &promote, &strict, b"")
        .await
        .succeeded("promoted to admin");
    assert_eq!(
        app.role_of("carol@example.com", "carol password").await,
        Some(Role::Admin)
    );

    let nobody = ["create-admin", "--promote", "nobody@example.com"];
    run(&app, &nobody, &[], b"")
        .await
        .failed("no account has the email");
}

#[tokio::test]
async fn create_admin_email_creates_an_admin_and_resets_its_password() {
    let app = spawn_app().await;
    let create = ["create-admin", "--email", "ops@example.com"];
    run(
        &app,
        &create,
        &[("SHOP_ADMIN_PASSWORD", "first password")],
        b"",
    )
    .await
    .succeeded("created");
    assert_eq!(
        app.role_of("ops@example.com", "first password").await,
        Some(Role::Admin)
    );

    // The password from standard input when the variable is unset.
    run(&app, &create, &[], b"second password\n")
        .await
        .succeeded("password reset");
    assert_eq!(app.role_of("ops@example.com", "first password").await, None);
    assert_eq!(
        app.role_of("ops@example.com", "second password").await,
        Some(Role::Admin)
    );
}
