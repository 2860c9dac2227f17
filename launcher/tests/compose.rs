//! docker-compose.yml agrees with the services it runs: every variable it
//! gives a service is a setting that service reads (no silent typos), every
//! listen port, neighbour URL, health check and database URL matches the
//! service's own configuration, every secret comes from a file the
//! `init-secrets` job writes, every shop container is hardened, and every
//! `${VAR}` is in `.env.example`. deploy/ci/compose-test.sh runs the stack
//! for real; these catch a typo in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::cli::Binary;
use yaml_rust2::{Yaml, YamlLoader};

/// Variables read outside the settings tables (logging).
const ALWAYS_READ: &[&str] = &["RUST_LOG", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(workspace().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn compose() -> Yaml {
    YamlLoader::load_from_str(&read("docker-compose.yml"))
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

/// The shop's services: compose name → the binary's own description.
fn binaries() -> BTreeMap<&'static str, Binary> {
    BTreeMap::from([
        ("users", users::config::binary()),
        ("products", products::config::binary()),
        ("cart", cart::config::binary()),
        ("mailer", mailer::config::binary()),
        ("stats", stats::config::binary()),
        ("payments-mock", payments_mock::config::binary()),
        ("balancer", balancer::config::binary()),
    ])
}

fn env_of(service: &Yaml) -> BTreeMap<String, String> {
    let env = service["environment"]
        .as_hash()
        .expect("environment is a mapping");
    env.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                Yaml::Null => String::new(),
                other => panic!("unexpected value {other:?}"),
            };
            (k.as_str().expect("string keys").to_string(), value)
        })
        .collect()
}

/// Every variable name a binary reads.
fn readable(binary: &Binary) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ALWAYS_READ.iter().map(|s| s.to_string()).collect();
    names.insert(format!("{}_CONFIG", binary.prefix));
    for s in &binary.settings {
        let mut direct = vec![s.env_var(binary.prefix)];
        direct.extend(s.shared_env.map(str::to_string));
        for name in direct {
            names.insert(format!("{name}{}", common::config::FILE_SUFFIX));
            names.insert(name);
        }
    }
    names
}

/// A service's mapping with YAML merge keys (`<<: *shop`) applied, which
/// docker-compose honours and yaml_rust2 leaves as a plain `<<` key.
fn merged(service: &Yaml) -> yaml_rust2::yaml::Hash {
    let own = service.as_hash().expect("a service is a mapping");
    let mut out = own
        .get(&Yaml::String("<<".into()))
        .and_then(Yaml::as_hash)
        .cloned()
        .unwrap_or_default();
    for (k, v) in own {
        if k.as_str() != Some("<<") {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

fn default_port(binary: &Binary) -> u16 {
    let listen = binary
        .settings
        .iter()
        .find(|s| s.key == "listen")
        .and_then(|s| s.default)
        .expect("every service has a default listen address");
    listen.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn every_variable_given_to_a_service_is_one_of_its_settings() {
    let doc = compose();
    let mut problems = Vec::new();
    for (name, binary) in binaries() {
        let service = &doc["services"][name];
        assert!(
            !service.is_badvalue(),
            "docker-compose.yml has no service {name}"
        );
        let known = readable(&binary);
        for var in env_of(service).keys() {
            if !known.contains(var) {
                problems.push(format!("{name}: {var} is not a setting of {}", binary.name));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn ports_urls_and_health_checks_agree_with_the_services() {
    let doc = compose();
    let bins = binaries();
    for (name, binary) in &bins {
        let service = &doc["services"][*name];
        let env = env_of(service);
        let port = default_port(binary);
        assert_eq!(
            env.get(&format!("{}_LISTEN", binary.prefix)),
            Some(&format!("0.0.0.0:{port}")),
            "{name} listens on all interfaces at its documented port"
        );
        let check: Vec<&str> = service["healthcheck"]["test"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} has a health check"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            check,
            ["CMD", "/usr/local/bin/service", "healthcheck"],
            "{name}"
        );
        assert_eq!(
            service["build"]["args"]["SERVICE"].as_str(),
            Some(binary.name),
            "{name} image builds its own binary"
        );

        // Every URL pointing at a neighbour names it by service and port.
        for (var, value) in &env {
            let Some(rest) = value.strip_prefix("http://") else {
                continue;
            };
            let host_port = rest.split('/').next().unwrap();
            let (host, port) = host_port
                .split_once(':')
                .unwrap_or_else(|| panic!("{name} {var}: no port"));
            let target = bins
                .get(host)
                .unwrap_or_else(|| panic!("{name} {var}: {host} is not a shop service"));
            assert_eq!(
                port.parse::<u16>().unwrap(),
                default_port(target),
                "{name} {var}"
            );
        }
    }
    // The webhook reaches the cart's internal endpoint.
    let payments = env_of(&doc["services"]["payments-mock"]);
    assert!(payments["PAYMENTS_WEBHOOK_URL"].ends_with("/internal/payments/webhook"));
}

#[test]
fn each_service_uses_its_own_database_created_by_the_init_script() {
    let doc = compose();
    let init = read("deploy/postgres/init.sh");
    let mut roles = BTreeSet::new();
    for (name, binary) in binaries() {
        let env = env_of(&doc["services"][name]);
        let key = format!("{}_DATABASE_URL", binary.prefix);
        let Some(url) = env.get(&key) else {
            assert_eq!(name, "balancer", "{name} has a database URL");
            continue;
        };
        let rest = url
            .strip_prefix("postgres://")
            .unwrap_or_else(|| panic!("{key} is PostgreSQL"));
        let (credentials, location) = rest.split_once('@').unwrap();
        let role = credentials.split(':').next().unwrap();
        assert_eq!(
            location,
            format!("postgres:5432/{role}"),
            "{key}: database named after its role"
        );
        let init_roles = init
            .lines()
            .find_map(|l| l.trim().strip_prefix("for role in "))
            .expect("init.sh loops over the roles");
        assert!(
            init_roles
                .trim_end_matches("; do")
                .split(' ')
                .any(|r| r == role),
            "init.sh creates role and database {role}"
        );
        assert!(
            roles.insert(role.to_string()),
            "two services share the role {role}"
        );
        assert!(
            !credentials.contains(':'),
            "{key} holds no password: it comes from a file"
        );
        let password_file = format!("{}_DATABASE_PASSWORD_FILE", binary.prefix);
        assert_eq!(
            env.get(&password_file).map(String::as_str),
            Some(format!("/run/secrets/shop/{role}_db_password").as_str()),
            "{name}"
        );
    }
    assert_eq!(roles.len(), 6);
}

#[test]
fn only_the_shop_the_mail_ui_and_the_observability_uis_are_published() {
    let doc = compose();
    for (name, service) in doc["services"].as_hash().unwrap() {
        let name = name.as_str().unwrap();
        let published = !service["ports"].is_badvalue();
        assert_eq!(
            published,
            matches!(
                name,
                "balancer" | "mailpit" | "prometheus" | "grafana" | "jaeger"
            ),
            "{name} ports"
        );
        for port in service["ports"].as_vec().into_iter().flatten() {
            assert!(
                port.as_str()
                    .unwrap()
                    .starts_with("${SHOP_BIND:-127.0.0.1}:"),
                "{name}: published on loopback unless SHOP_BIND says otherwise"
            );
        }
    }
}

/// The balancer's admin listener (`/metrics`, the pools) listens inside the
/// network on a port of its own, and only the public port is published.
#[test]
fn the_balancer_publishes_its_public_port_only() {
    let doc = compose();
    let balancer = &doc["services"]["balancer"];
    let env = env_of(balancer);
    assert_eq!(
        env.get("BALANCER_ADMIN_LISTEN").map(String::as_str),
        Some("0.0.0.0:8081")
    );
    let published: Vec<&str> = balancer["ports"]
        .as_vec()
        .expect("the balancer publishes a port")
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        published,
        ["${SHOP_BIND:-127.0.0.1}:${SHOP_PORT:-8080}:8080"]
    );
}

/// Every secret a service gets is a file in the `secrets` volume that
/// `init-secrets` writes; none is in the environment or interpolated.
#[test]
fn secrets_come_from_files_init_secrets_writes() {
    let doc = compose();
    let written: BTreeSet<String> = common::secrets::SECRET_FILES
        .iter()
        .map(|f| format!("/run/secrets/shop/{}", f.name))
        .collect();
    for (name, binary) in binaries() {
        let env = env_of(&doc["services"][name]);
        for s in binary.settings.iter().filter(|s| s.secret) {
            let mut names = vec![s.env_var(binary.prefix)];
            names.extend(s.shared_env.map(str::to_string));
            for var in names {
                if var == "SHOP_ADMIN_PASSWORD" {
                    continue; // an optional override, empty by default
                }
                // A URL secret only for the credentials it may hold.
                let plain = env
                    .get(&var)
                    .is_some_and(|v| !v.contains("://") || v.contains('@'));
                assert!(!plain, "{name}: {var} in plain sight");
                if let Some(path) = env.get(&format!("{var}_FILE")) {
                    assert!(
                        written.contains(path),
                        "{name}: {path} is not written by init-secrets"
                    );
                }
            }
        }
    }
    let postgres = env_of(&doc["services"]["postgres"]);
    assert_eq!(
        postgres["POSTGRES_PASSWORD_FILE"],
        "/run/secrets/shop/postgres_password"
    );
    let init = &doc["services"]["init-secrets"];
    assert_eq!(init["command"][0].as_str(), Some("init-secrets"));
    assert_eq!(init["restart"].as_str(), Some("no"));
}

/// The hardening every shop container gets (the `x-shop` block), checked
/// for real with `docker inspect` by deploy/ci/compose-test.sh.
#[test]
fn shop_containers_are_hardened_and_bounded() {
    let doc = compose();
    let mut names: Vec<&str> = binaries().into_keys().collect();
    names.extend(["init-secrets", "seed"]);
    for name in names {
        let service = merged(&doc["services"][name]);
        let get = |k: &str| {
            service
                .get(&Yaml::String(k.into()))
                .cloned()
                .unwrap_or(Yaml::BadValue)
        };
        assert_eq!(get("cap_drop")[0].as_str(), Some("ALL"), "{name}");
        assert_eq!(
            get("security_opt")[0].as_str(),
            Some("no-new-privileges:true"),
            "{name}"
        );
        assert_eq!(get("read_only").as_bool(), Some(true), "{name}");
        assert!(
            get("mem_limit").as_str().is_some(),
            "{name} has a memory limit"
        );
        assert_eq!(get("stop_grace_period").as_str(), Some("20s"), "{name}");
        assert_eq!(
            get("logging")["driver"].as_str(),
            Some("json-file"),
            "{name}"
        );
        assert!(
            get("logging")["options"]["max-size"].as_str().is_some(),
            "{name}"
        );
    }
    // No fixed subnet or address: they collide with other networks.
    assert!(doc["networks"]["shop"]["ipam"].is_badvalue());
    assert!(!read("docker-compose.yml").contains("ipv4_address"));
}

#[test]
fn every_interpolated_variable_is_an_optional_override_in_env_example() {
    let text = read("docker-compose.yml");
    let example = read(".env.example");
    // Overrides only, each shown commented out (`#NAME=default`): nothing
    // must be set for a first `up`.
    let documented: BTreeSet<&str> = example
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(
        example.lines().all(|l| l.is_empty() || l.starts_with('#')),
        ".env.example sets nothing"
    );
    assert!(
        !text.contains(":?"),
        "docker-compose.yml requires no variable: every one has a default"
    );
    let mut missing = BTreeSet::new();
    for part in text.split("${").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !documented.contains(name.as_str()) {
            missing.insert(name);
        }
    }
    assert!(missing.is_empty(), "not in .env.example: {missing:?}");
}
