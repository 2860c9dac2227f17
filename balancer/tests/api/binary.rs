//! The balancer binary itself: the admin endpoints on the port after the
//! public one, and `check-config` accepting good tables and naming the bad
//! rule.

use std::time::Duration;

use serde_json::Value;

/// The binary as the launcher and docker-compose run it: the admin
/// endpoints on loopback at the public port + 1, not on the public port.
#[tokio::test]
async fn the_binary_serves_its_admin_endpoints_on_the_next_port() {
    let public = two_free_ports();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_balancer"))
        .args(["--listen", &format!("127.0.0.1:{public}"), "--workers", "1"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let admin = format!("http://127.0.0.1:{}", public + 1);
    let mut metrics = None;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{admin}/metrics")).send().await {
            metrics = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics.expect("the admin listener answers");
    assert_eq!(metrics.status(), 200);
    let json = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await }
    };
    let ready = json(format!("{admin}/readyz")).await.unwrap();
    assert!(ready["pools"]["users"].is_object(), "{ready}");
    let public = format!("http://127.0.0.1:{public}");
    let resp = http.get(format!("{public}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let ready = json(format!("{public}/readyz")).await.unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A free port whose successor is free too. Both are closed again before
/// the balancer binds them: a small race, as with any port handed to a
/// child process.
fn two_free_ports() -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

#[test]
fn check_config_accepts_good_tables_and_names_the_bad_rule() {
    let bin = env!("CARGO_BIN_EXE_balancer");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.toml");
    let out = std::process::Command::new(bin)
        .args(["check-config", shipped])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[route]]\nprefix = \"/a\"\npool = \"a\"\n\n[[route]]\nregex = \"^/b(\"\npool = \"a\"\n\n[pools.a]\nupstreams = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("route #2"), "{stderr}");
    assert!(stderr.contains("regex"), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = std::process::Command::new(bin)
        .args(["check-config", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
