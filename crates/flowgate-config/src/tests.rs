use super::*;
use std::time::Duration;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:18180"
admin_listen = "127.0.0.1:18190"
drain_timeout = "5s"
workers = 3

[limits]
max_body_bytes = "1MiB"

[pools.llm]
endpoints = [
  { url = "http://127.0.0.1:18081", weight = 2, tags = ["fast"], region = "eu" },
  { url = "http://127.0.0.1:18082/base/", name = "b" },
]
request_timeout = "30s"

[[routes]]
name = "chat"
kind = "openai"
path = "/v1/chat/completions"
methods = ["post"]
pool = "llm"

[[routes]]
kind = "http"
prefix = "/api"
headers = { "x-tenant" = "a" }
pool = "llm"
"#;

fn parse_ok(src: &str) -> Config {
    parse(src, "flowgate.toml", std::iter::empty()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(src: &str) -> Vec<Problem> {
    parse_env_err(src, &[])
}

fn parse_env_err(src: &str, env: &[(&str, &str)]) -> Vec<Problem> {
    let env = env.iter().map(|(a, b)| (a.to_string(), b.to_string()));
    match parse(src, "flowgate.toml", env) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn good_config_validates_with_defaults() {
    let c = parse_ok(GOOD);
    assert_eq!(c.server.listen.port(), 18180);
    assert_eq!(c.server.drain_timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.server.workers.map(usize::from), Some(3));
    assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
    assert_eq!(c.limits.max_header_bytes, 64 * 1024);
    let llm = c.pool("llm").unwrap();
    assert_eq!(llm.endpoints[0].name, "127.0.0.1:18081");
    assert_eq!(llm.endpoints[0].weight, 2);
    assert_eq!(llm.endpoints[1].base_path, "/base");
    assert_eq!(llm.connect_timeout, defaults::CONNECT_TIMEOUT);
    assert_eq!(c.routes[0].methods, vec![http::Method::POST]);
    assert_eq!(c.routes[1].name, "route-1");
    assert!(
        c.summary()
            .contains("chat: openai path /v1/chat/completions methods POST -> pool llm")
    );
}

#[test]
fn empty_file_is_valid() {
    let c = parse_ok("");
    assert!(c.routes.is_empty());
    assert_eq!(c.server.listen.to_string(), defaults::LISTEN);
}

#[test]
fn unknown_field_names_line_column_and_key() {
    let p = parse_err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].location, Location::File { line: 3, column: 1 });
    assert_eq!(p[0].key.to_string(), "server.lisen");
    let text = p[0].to_string();
    assert!(
        text.starts_with("flowgate.toml:3:1: key `server.lisen`: unknown field `lisen`"),
        "{text}"
    );
    assert!(text.contains("expected one of"), "{text}");
}

#[test]
fn every_misspelt_or_mistyped_key_is_reported_in_one_run_with_the_nearest_known_key() {
    let p = parse_err(
        "[server]\nlisen = \"127.0.0.1:1\"\nworkrs = 2\n\n[pools.a]\n         endpoints = [{ url = \"http://x:1\" }]\nmax_connections = \"many\"\n\n         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefx = \"/v1\"\npool = \"a\"\n         cache = { tll = \"1m\" }\n",
    );
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "server.lisen",
            "server.workrs",
            "pools.a.max_connections",
            "routes[0].prefx",
            "routes[0].cache.tll"
        ],
        "{p:?}"
    );
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert!(text[0].contains("did you mean `listen`?"), "{}", text[0]);
    assert!(text[1].contains("did you mean `workers`?"), "{}", text[1]);
    assert!(
        text[3].contains(
            "key `routes[0].prefx` (route \"chat\"): unknown field `prefx`: did you mean `prefix`?"
        ),
        "{}",
        text[3]
    );
    assert!(text[4].contains("did you mean `ttl`?"), "{}", text[4]);
    // Lines point at each key.
    assert_eq!(p[1].location, Location::File { line: 3, column: 1 });
}

#[test]
fn validation_problems_name_the_route_they_are_in() {
    let p = parse_err(
        "[pools.a]\nendpoints = [{ url = \"http://x:1\" }]\n\n         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"nope\"\n",
    );
    assert!(
        p[0].to_string()
            .contains("key `routes[0].pool` (route \"chat\")"),
        "{}",
        p[0]
    );
}

#[test]
fn wrong_type_names_the_key() {
    let p = parse_err(
        "[pools.a]\nendpoints = [{ url = \"http://x:1\" }]\nmax_connections = \"many\"\n",
    );
    assert_eq!(p[0].key.to_string(), "pools.a.max_connections");
    assert_eq!(p[0].location, Location::File { line: 3, column: 1 });
}

#[test]
fn endpoint_names_must_be_header_safe() {
    let p = parse_err("[pools.a]\nendpoints = [{ url = \"http://x:1\", name = \"a b\" }]\n");
    assert_eq!(p[0].key.to_string(), "pools.a.endpoints[0].name");
    assert!(p[0].message.contains("visible ASCII"), "{}", p[0].message);
}

#[test]
fn zero_workers_is_refused_with_the_range() {
    let p = parse_err("[server]\nworkers = 0\n");
    assert_eq!(p[0].key.to_string(), "server.workers");
    assert_eq!(p[0].location, Location::File { line: 2, column: 1 });
    assert!(
        p[0].message.contains("expected 1 to 256"),
        "{}",
        p[0].message
    );
}

#[test]
fn bad_duration_says_what_is_expected() {
    let p = parse_err("[server]\ndrain_timeout = \"30\"\n");
    assert_eq!(p[0].key.to_string(), "server.drain_timeout");
    assert!(
        p[0].message.contains("expected a duration such as"),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].location, Location::File { line: 2, column: 1 });
}

#[test]
fn validation_errors_are_all_reported_with_lines() {
    let src = "[pools.llm]\nendpoints = [{ url = \"ftp://x\" }]\n\n[[routes]]\nkind = \"http\"\npath = \"nope\"\npool = \"missing\"\n";
    let p = parse_err(src);
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert!(
        keys.contains(&"pools.llm.endpoints[0].url".to_string()),
        "{keys:?}"
    );
    assert!(keys.contains(&"routes[0].path".to_string()), "{keys:?}");
    assert!(keys.contains(&"routes[0].pool".to_string()), "{keys:?}");
    let pool = p
        .iter()
        .find(|p| p.key.to_string() == "routes[0].pool")
        .unwrap();
    assert_eq!(pool.location, Location::File { line: 7, column: 1 });
    assert!(pool.message.contains("unknown pool \"missing\""));
}

#[test]
fn syntax_error_has_a_line() {
    let p = parse_err("[server]\nlisten = \n");
    assert!(
        matches!(p[0].location, Location::File { line: 2, .. }),
        "{:?}",
        p[0]
    );
    assert!(p[0].message.starts_with("invalid TOML"));
}

#[test]
fn https_upstreams_connect_on_443_with_the_bundled_roots() {
    let c = parse_ok(
        "[pools.a]\nendpoints = [{ url = \"https://api.openai.com/v1\" }, { url = \"https://[::1]:8443\" }]\n",
    );
    let p = &c.pools[0];
    let e = &p.endpoints[0];
    assert!(e.tls);
    assert_eq!(
        (e.authority.as_str(), e.host.as_str(), e.base_path.as_str()),
        ("api.openai.com:443", "api.openai.com", "/v1")
    );
    assert_eq!(p.endpoints[1].host, "::1", "an IPv6 name without brackets");
    assert_eq!(p.tls, UpstreamTls::default());
    assert_eq!(p.tls.roots, TlsRoots::Bundled);
    assert!(
        c.summary().contains("tls: roots bundled"),
        "{}",
        c.summary()
    );
    let c = parse_ok("[pools.a]\nendpoints = [{ url = \"http://h\" }]\n");
    assert_eq!(c.pools[0].endpoints[0].authority, "h:80");
    assert!(!c.pools[0].endpoints[0].tls);
}

#[test]
fn tls_settings_are_checked_with_their_keys() {
    let dir = std::env::temp_dir().join(format!("flowgate-tls-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), "x").unwrap();
    let origin = dir.join("flowgate.toml").display().to_string();
    let parse_at = |src: &str| parse(src, &origin, std::iter::empty());
    let ok = parse_at(
        "[pools.a]\nendpoints = [{ url = \"https://h\" }]\n[pools.a.tls]\nca_file = \"ca.pem\"\nroots = \"none\"\nsni = \"internal.example\"\ninsecure_skip_verify = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls = &ok.pools[0].tls;
    assert_eq!(
        tls.ca_file.as_deref(),
        Some(dir.join("ca.pem").as_path()),
        "relative to the config"
    );
    assert_eq!(tls.sni.as_deref(), Some("internal.example"));
    assert!(
        ok.summary().contains("WARNING: tls.insecure_skip_verify"),
        "check shows it: {}",
        ok.summary()
    );

    let Err(ConfigError::Invalid(p)) = parse_at(
        "[pools.a]\nendpoints = [{ url = \"https://h\" }]\n\n[pools.a.tls]\nca_file = \"missing.pem\"\ncert_file = \"ca.pem\"\nroots = \"all\"\nsni = \"a b\"\n",
    ) else {
        panic!("accepted")
    };
    let at = |k: &str| {
        p.iter()
            .find(|p| p.key.to_string() == k)
            .unwrap_or_else(|| panic!("no problem at {k}: {p:?}"))
    };
    assert!(at("pools.a.tls.ca_file").message.contains("missing.pem"));
    assert!(matches!(
        at("pools.a.tls.ca_file").location,
        Location::File { line: 5, .. }
    ));
    assert!(
        at("pools.a.tls.key_file")
            .message
            .contains("key_file must be too")
    );
    assert!(at("pools.a.tls.roots").message.contains("\"bundled\""));
    assert!(at("pools.a.tls.sni").message.contains("not a host name"));

    let Err(ConfigError::Invalid(p)) = parse_at(
        "[pools.a]\nendpoints = [{ url = \"http://h:1\" }]\n[pools.a.tls]\nroots = \"system\"\n",
    ) else {
        panic!("accepted")
    };
    assert!(
        p[0].message.contains("no endpoint of this pool is https"),
        "{p:?}"
    );
    let Err(ConfigError::Invalid(p)) = parse_with(
        "[pools.a]\nendpoints = [{ url = \"https://h\" }]\n[pools.a.tls]\nca_file = \"ca.pem\"\n",
        &origin,
        std::iter::empty(),
        |_| {
            vec![(
                KeyPath::default()
                    .key("pools")
                    .key("a")
                    .key("tls")
                    .key("ca_file"),
                "no CERTIFICATE".into(),
            )]
        },
    ) else {
        panic!("accepted")
    };
    assert!(
        matches!(p[0].location, Location::File { line: 4, .. }),
        "a check's problem is located: {p:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn route_needs_exactly_one_of_path_and_prefix() {
    let p = parse_err(
        "[pools.a]\nendpoints=[{url=\"http://h:1\"}]\n[[routes]]\nkind=\"http\"\npool=\"a\"\n",
    );
    assert!(p[0].message.contains("needs `path`"));
    let p = parse_err(
        "[pools.a]\nendpoints=[{url=\"http://h:1\"}]\n[[routes]]\nkind=\"http\"\npath=\"/a\"\nprefix=\"/b\"\npool=\"a\"\n",
    );
    assert!(p[0].message.contains("not both"));
}

#[test]
fn env_overrides_apply_and_are_blamed() {
    let env = [
        ("FLOWGATE__SERVER__LISTEN", "127.0.0.1:7777"),
        ("FLOWGATE__ROUTES__0__POOL", "llm"),
    ];
    let c = parse(
        GOOD,
        "flowgate.toml",
        env.iter().map(|(a, b)| (a.to_string(), b.to_string())),
    )
    .unwrap();
    assert_eq!(c.server.listen.port(), 7777);

    let p = parse_env_err(GOOD, &[("FLOWGATE__SERVER__LISTEN", "not-an-address")]);
    assert_eq!(
        p[0].location,
        Location::Env {
            var: "FLOWGATE__SERVER__LISTEN".into()
        }
    );
    assert!(
        p[0].to_string()
            .starts_with("environment variable FLOWGATE__SERVER__LISTEN: key `server.listen`")
    );
}

#[test]
fn same_listen_and_admin_is_an_error() {
    let p = parse_err("[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:1\"\n");
    assert_eq!(p[0].key.to_string(), "server.admin_listen");
}

#[test]
fn max_idle_cannot_exceed_max_connections() {
    let p =
        parse_err("[pools.a]\nendpoints=[{url=\"http://h:1\"}]\nmax_connections=2\nmax_idle=3\n");
    assert_eq!(p[0].key.to_string(), "pools.a.max_idle");
}

#[test]
fn load_reports_missing_file() {
    let e = load(Path::new("/nonexistent/flowgate.toml")).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/flowgate.toml: cannot read")
    );
}

#[tokio::test]
async fn watcher_reports_replaced_file() {
    let dir = std::env::temp_dir().join(format!("fg-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flowgate.toml");
    std::fs::write(&file, "a").unwrap();
    let (_w, mut rx) = watch_file(&file, std::time::Duration::from_millis(50)).unwrap();
    // Replace by rename, as editors do.
    let tmp = dir.join("flowgate.toml.tmp");
    std::fs::write(&tmp, "b").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
    assert_eq!(got.unwrap(), Some(()));
    // An unrelated file in the same directory does not trigger.
    std::fs::write(dir.join("other.txt"), "x").unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv()).await;
    assert!(quiet.is_err(), "unrelated file triggered a reload");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cache_defaults_and_route_modes() {
    let off = parse_ok(GOOD);
    assert!(!off.cache.enabled);
    assert!(off.routes.iter().all(|r| r.cache.mode == CacheMode::Off));
    let on = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\nmemory = \"64MiB\"\nttl = \"4h\"\n"
    ));
    assert_eq!(on.cache.memory_bytes, 64 * 1024 * 1024);
    assert_eq!(on.cache.ttl, Duration::from_secs(4 * 3600));
    // openai routes cache deterministic requests by default, http routes do not.
    assert_eq!(on.routes[0].cache.mode, CacheMode::Deterministic);
    assert_eq!(on.routes[1].cache.mode, CacheMode::Off);
    assert!(on.summary().contains("cache deterministic ttl 4h ns chat"));
}

#[test]
fn cache_errors_name_the_key() {
    let route = "[pools.p]\nendpoints = [{ url = \"http://x:1\" }]\n\n[[routes]]\nkind = \"openai\"\npath = \"/v1\"\npool = \"p\"\n";
    let p = parse_err(&format!("{route}cache = {{ mode = \"always\" }}\n"));
    assert_eq!(p[0].key.to_string(), "routes[0].cache.mode");
    assert!(p[0].message.contains("enabled = true"), "{}", p[0].message);
    let p = parse_err(&format!(
        "{route}cache = {{ ttl = \"0s\", namespace = \"a b\" }}\n\n[cache]\nenabled = true\nmemory = \"1KiB\"\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "cache.memory",
            "cache.max_entry",
            "routes[0].cache.ttl",
            "routes[0].cache.namespace"
        ]
    );
    let p = parse_err(&format!(
        "{route}cache = {{ query = [\"q\"], headers = [\"accept\"] }}\n\n[cache]\nenabled = true\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["routes[0].cache.query", "routes[0].cache.headers"]);
    assert!(
        p[0].message.contains("only http routes"),
        "{}",
        p[0].message
    );
    let http = route.replace("openai", "http");
    let p = parse_err(&format!(
        "{http}cache = {{ mode = \"deterministic\", query = [\"\"], headers = [\"ok\", \"bad name\"] }}\n\n[cache]\nenabled = true\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        ["routes[0].cache.headers[1]", "routes[0].cache.query[0]"]
    );
}

#[test]
fn http_routes_choose_their_key() {
    let route = "[pools.p]\nendpoints = [{ url = \"http://x:1\" }]\n\n[[routes]]\nname = \"api\"\nkind = \"http\"\nprefix = \"/api\"\npool = \"p\"\n";
    let c = parse_ok(&format!(
        "{route}cache = {{ mode = \"deterministic\", query = [\"q\", \"lang\", \"q\"], headers = [\"X-Tenant\", \"accept\"] }}\n\n[cache]\nenabled = true\n"
    ));
    let rc = &c.routes[0].cache;
    assert_eq!(rc.mode, CacheMode::Deterministic);
    assert_eq!(
        rc.query.as_deref(),
        Some(&["lang".to_string(), "q".to_string()][..])
    );
    let headers: Vec<&str> = rc.headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(headers, ["accept", "x-tenant"]);
    assert!(
        c.summary()
            .contains("key query lang,q headers accept,x-tenant"),
        "{}",
        c.summary()
    );
    // By default every query parameter and no header is part of the key.
    let c = parse_ok(&format!(
        "{route}cache = {{ mode = \"always\" }}\n\n[cache]\nenabled = true\n"
    ));
    assert_eq!(c.routes[0].cache.query, None);
    assert!(
        c.summary().contains("key query all headers none"),
        "{}",
        c.summary()
    );
}

#[test]
fn the_disk_tier_is_configured_by_its_table() {
    let on = flowgate_parse(
        &format!(
            "{GOOD}\n[cache]\nenabled = true\ncompress_above = \"2KiB\"\n\n[cache.disk]\npath = \"state/cache.redb\"\nsize = \"64MiB\"\n"
        ),
        "/etc/flowgate/flowgate.toml",
    );
    let d = on.cache.disk.as_ref().unwrap();
    // Relative to the config file's directory.
    assert_eq!(
        d.path,
        std::path::Path::new("/etc/flowgate/state/cache.redb")
    );
    assert_eq!(d.max_bytes, 64 * 1024 * 1024);
    assert_eq!(d.purge_interval, Duration::from_secs(60));
    assert_eq!(on.cache.compress_above, 2048);
    assert!(
        on.summary()
            .contains("cache disk: /etc/flowgate/state/cache.redb")
    );
    let off = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.disk]\nenabled = false\npath = \"/x\"\n"
    ));
    assert!(off.cache.disk.is_none());
    assert!(parse_ok(GOOD).cache.disk.is_none());
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.disk]\nsize = \"1KiB\"\npurge_interval = \"0s\"\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["cache.disk.path"]);
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.disk]\npath = \"/x\"\nsize = \"1KiB\"\npurge_interval = \"0s\"\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(keys, ["cache.disk.size", "cache.disk.purge_interval"]);
}

fn flowgate_parse(src: &str, origin: &str) -> Config {
    crate::parse(src, origin, std::iter::empty()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_redis_tier_is_configured_by_its_table() {
    let on = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.redis]\nurl = \"redis://:pw@127.0.0.1:6379/2\"\ntimeout = \"20ms\"\n"
    ));
    let r = on.cache.redis.as_ref().unwrap();
    assert_eq!(r.link.urls, ["redis://:pw@127.0.0.1:6379/2"]);
    assert!(!r.link.cluster);
    assert_eq!(r.lock_wait, Duration::from_secs(5));
    assert_eq!(r.link.prefix, "flowgate");
    assert_eq!(r.link.timeout, Duration::from_millis(20));
    assert_eq!(
        (r.link.breaker_failures, r.link.breaker_cooldown),
        (3, Duration::from_secs(5))
    );
    assert!(
        on.summary()
            .contains("cache redis: redis://:***@127.0.0.1:6379/2")
    );
    assert!(!on.summary().contains("pw"));
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.redis]\nurl = \"127.0.0.1:6379\"\n"
    ));
    assert_eq!(p[0].key.to_string(), "cache.redis.url");
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.redis]\nurl = \"redis://h:1\"\nprefix = \"a b\"\nbreaker_failures = 0\ntimeout = \"0s\"\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "cache.redis.prefix",
            "cache.redis.timeout",
            "cache.redis.breaker_failures"
        ]
    );
}

#[test]
fn shared_limits_are_configured_by_their_table() {
    let on = parse_ok(&format!(
        "{GOOD}\n[shared_limits]\nurl = \"redis://127.0.0.1:6379\"\ntimeout = \"10ms\"\nfallback_share = 0.5\n"
    ));
    let l = on.shared_limits.as_ref().unwrap();
    assert_eq!(l.link.urls, ["redis://127.0.0.1:6379"]);
    assert_eq!(l.link.timeout, Duration::from_millis(10));
    assert_eq!(l.link.prefix, "flowgate");
    assert_eq!(l.fallback_share, 0.5);
    assert!(on.summary().contains(
        "shared limits: redis://127.0.0.1:6379 prefix flowgate, timeout 10ms, breaker 3 failures / 5s, 0.5 of each limit per replica while Redis is down"
    ), "{}", on.summary());
    let off = parse_ok(&format!(
        "{GOOD}\n[shared_limits]\nenabled = false\nurl = \"redis://127.0.0.1:6379\"\n"
    ));
    assert!(off.shared_limits.is_none());
    assert!(parse_ok(GOOD).shared_limits.is_none());
    for (body, key, says) in [
        (
            "fallback_share = 0.5",
            "shared_limits.url",
            "missing: shared limits need",
        ),
        (
            "url = \"redis://h:1\"\nfallback_share = 0",
            "shared_limits.fallback_share",
            "above 0 and at most 1",
        ),
        (
            "url = \"redis://h:1\"\nfallback_share = 1.5",
            "shared_limits.fallback_share",
            "got 1.5",
        ),
        (
            "url = \"redis://h:1\"\nshare = 1",
            "shared_limits.share",
            "unknown field",
        ),
    ] {
        let p = parse_err(&format!("{GOOD}\n[shared_limits]\n{body}\n"));
        assert_eq!(p[0].key.to_string(), key, "{body}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
    }
}

#[test]
fn shared_budgets_are_configured_in_cost_shared() {
    let on = parse_ok(&format!(
        "{GOOD}\n[cost.shared]\nurl = \"redis://:pw@127.0.0.1:6379\"\nprefix = \"fg\"\nsync_interval = \"250ms\"\n"
    ));
    let s = on.cost.shared.as_ref().unwrap();
    assert_eq!(s.link.urls, ["redis://:pw@127.0.0.1:6379"]);
    assert_eq!(s.link.prefix, "fg");
    assert_eq!(s.sync_interval, Duration::from_millis(250));
    assert!(
        on.summary().contains(
            "budgets shared: redis://:***@127.0.0.1:6379 prefix fg, timeout 50ms, breaker 3 failures / 5s, synced every 250ms"
        ),
        "{}",
        on.summary()
    );
    let d = parse_ok(&format!(
        "{GOOD}\n[cost.shared]\nurl = \"redis://127.0.0.1:6379\"\n"
    ));
    assert_eq!(d.cost.shared.unwrap().sync_interval, Duration::from_secs(1));
    let off = parse_ok(&format!(
        "{GOOD}\n[cost.shared]\nenabled = false\nurl = \"redis://127.0.0.1:6379\"\n"
    ));
    assert!(off.cost.shared.is_none());
    assert!(parse_ok(GOOD).cost.shared.is_none());
    for (body, key, says) in [
        (
            "sync_interval = \"1s\"",
            "cost.shared.url",
            "missing: shared budgets need",
        ),
        (
            "url = \"redis://h:1\"\nsync_interval = \"2m\"",
            "cost.shared.sync_interval",
            "from 10ms to 60s",
        ),
        (
            "url = \"http://h:1\"",
            "cost.shared.url",
            "expected a redis://host:port URL",
        ),
        (
            "url = \"redis://h:1\"\nshare = 1",
            "cost.shared.share",
            "unknown field",
        ),
    ] {
        let p = parse_err(&format!("{GOOD}\n[cost.shared]\n{body}\n"));
        assert_eq!(p[0].key.to_string(), key, "{body}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
    }
}

#[test]
fn the_history_is_kept_in_the_data_dir_for_each_resolutions_retention() {
    let c = parse_ok(&format!(
        "[history]\nretention_10s = \"6h\"\nretention_1m = \"168h\"\n{}",
        GOOD.replacen(
            "[server]\n",
            "[server]\ndata_dir = \"/var/lib/flowgate\"\n",
            1
        )
    ));
    assert!(c.history.enabled);
    assert_eq!(
        c.history.path.as_deref(),
        Some(std::path::Path::new("/var/lib/flowgate/history.redb"))
    );
    assert_eq!(
        c.history.retention,
        [
            Duration::from_secs(6 * 3600),
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(400 * 86_400)
        ]
    );
    assert!(
        c.summary()
            .contains("history: /var/lib/flowgate/history.redb, 10s points kept 6h"),
        "{}",
        c.summary()
    );
    let d = parse_ok(GOOD);
    assert_eq!((d.history.enabled, d.history.path.as_ref()), (true, None));
    for (body, key, says) in [
        (
            "retention_10s = \"30s\"",
            "history.retention_10s",
            "out of range",
        ),
        (
            "retention_1m = \"4h\"\nretention_10s = \"8h\"",
            "history.retention_1h",
            "at least as long",
        ),
        ("path = \"\"", "history.path", "empty path"),
        ("retention = \"1h\"", "history.retention", "unknown field"),
    ] {
        let p = parse_err(&format!("[history]\n{body}\n{GOOD}"));
        assert_eq!(p[0].key.to_string(), key, "{body}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
    }
}

#[test]
fn alert_rules_of_every_kind_are_read_and_summed_up() {
    let c = parse_ok(&format!(
        "{GOOD}\n[[alerts.rules]]\nname = \"chat-errors\"\nseverity = \"critical\"\nseries = 'error_ratio{{route=\"chat\"}}'\n\
         window = \"10s\"\nop = \">\"\nvalue = 0.05\nfor = \"5s\"\nlabels = {{ team = \"platform\" }}\n\n\
         [[alerts.rules]]\nname = \"traffic-jump\"\nkind = \"rate_of_change\"\nseries = 'requests_per_second{{pool=\"llm\"}}'\nwindow = \"5m\"\nvalue = 200\n\n\
         [[alerts.rules]]\nname = \"silent\"\nkind = \"absent\"\nseries = \"process_threads\"\nfor = \"2m\"\n\n\
         [[alerts.rules]]\nname = \"spend\"\nkind = \"budget\"\nat = 80\n\n\
         [[alerts.rules]]\nname = \"chat-slo\"\nkind = \"burn_rate\"\nroute = \"chat\"\nobjective = 99.9\n\n\
         [[alerts.rules]]\nname = \"odd-latency\"\nkind = \"anomaly\"\nseries = \"latency_ms_p95*\"\nvalue = 0.95\n\n\
         [[alerts.rules]]\nname = \"slow-queue\"\nseries = 'stage_ms{{ stage = \"queue\", route = \"chat\" }}'\nvalue = 50\n"
    ));
    let names: Vec<&str> = c.alerts.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "chat-errors",
            "traffic-jump",
            "silent",
            "spend",
            "chat-slo",
            "odd-latency",
            "slow-queue"
        ]
    );
    // A stage's time budget: its labels as the history writes them, whatever their order.
    assert!(matches!(
        &c.alerts.rules[6].kind,
        crate::AlertKind::Threshold { series, value, .. }
            if series == "stage_ms{route=\"chat\",stage=\"queue\"}" && *value == 50.0
    ));
    assert_eq!(
        c.alerts.rules[5].kind,
        crate::AlertKind::Anomaly {
            series: Some("latency_ms_p95*".into()),
            min_score: 0.95
        }
    );
    let e = &c.alerts.rules[0];
    assert_eq!(
        (e.severity, e.for_, e.group.as_str()),
        (
            crate::Severity::Critical,
            Duration::from_secs(5),
            "chat-errors"
        )
    );
    assert_eq!(
        e.kind,
        crate::AlertKind::Threshold {
            series: "error_ratio{route=\"chat\"}".into(),
            window: Duration::from_secs(10),
            op: crate::Op::Above,
            value: 0.05
        }
    );
    assert_eq!(e.labels["team"], "platform");
    assert!(matches!(
        c.alerts.rules[4].kind,
        crate::AlertKind::BurnRate { factor, long, short, .. }
            if factor == 14.4 && long == Duration::from_secs(3600) && short == Duration::from_secs(300)
    ));
    assert!(
        c.summary().contains(
            "alert chat-errors (critical, for 5s): error_ratio{route=\"chat\"} over 10s > 0.05"
        ),
        "{}",
        c.summary()
    );
}

#[test]
fn bad_alert_rules_name_their_keys() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "series = \"coffee_per_second\"\nvalue = 1",
            "alerts.rules[0].series",
            "unknown series",
        ),
        (
            "series = 'error_ratio{route=\"tea\"}'\nvalue = 1",
            "alerts.rules[0].series",
            "unknown route",
        ),
        (
            "series = \"error_ratio\"\nvalue = 1",
            "alerts.rules[0].series",
            "needs a label: {route=\"...\"} (one of route|pool|endpoint)",
        ),
        (
            "series = 'stage_ms{route=\"chat\"}'\nvalue = 1",
            "alerts.rules[0].series",
            "needs each of its labels once: route, stage",
        ),
        (
            "series = 'stage_ms{route=\"chat\",stage=\"lunch\"}'\nvalue = 1",
            "alerts.rules[0].series",
            "unknown stage \"lunch\" (one of gateway, read,",
        ),
        (
            "series = 'stage_ms{route=\"chat\",stage=\"queue\",pool=\"x\"}'\nvalue = 1",
            "alerts.rules[0].series",
            "labelled by route and stage, not \"pool\"",
        ),
        (
            "series = 'error_ratio{route=chat}'\nvalue = 1",
            "alerts.rules[0].series",
            "malformed labels",
        ),
        (
            "series = 'spend_usd_per_hour{route=\"chat\"}'\nvalue = 1",
            "alerts.rules[0].series",
            "takes no label",
        ),
        (
            "series = \"spend_usd_per_hour\"\nvalue = 1\nfor = \"soon\"",
            "alerts.rules[0].for",
            "not a duration",
        ),
        (
            "series = \"spend_usd_per_hour\"",
            "alerts.rules[0].value",
            "missing",
        ),
        (
            "series = \"spend_usd_per_hour\"\nvalue = 1\nop = \"~\"",
            "alerts.rules[0].op",
            "unknown op",
        ),
        (
            "series = \"spend_usd_per_hour\"\nvalue = 1\nseverity = \"dire\"",
            "alerts.rules[0].severity",
            "unknown severity",
        ),
        (
            "kind = \"budget\"\nbudget = \"nope\"",
            "alerts.rules[0].budget",
            "unknown budget",
        ),
        (
            "kind = \"budget\"\nat = 150",
            "alerts.rules[0].at",
            "out of range",
        ),
        (
            "kind = \"burn_rate\"\nroute = \"chat\"\nobjective = 100",
            "alerts.rules[0].objective",
            "out of range",
        ),
        (
            "kind = \"burn_rate\"\nroute = \"chat\"\nshort = \"2h\"",
            "alerts.rules[0].short",
            "shorter than the long",
        ),
        ("kind = \"guess\"", "alerts.rules[0].kind", "unknown kind"),
        (
            "kind = \"anomaly\"\nseries = \"latncy*\"",
            "alerts.rules[0].series",
            "matches none of the history's series",
        ),
        (
            "kind = \"anomaly\"\nvalue = 2",
            "alerts.rules[0].value",
            "out of range",
        ),
        (
            "series = \"spend_usd_per_hour\"\nvalue = 1\nrepeat = \"1s\"",
            "alerts.rules[0].repeat",
            "at least 1m",
        ),
        (
            "series = \"spend_usd_per_hour\"\nvalue = 1\nthreshold = 2",
            "alerts.rules[0].threshold",
            "unknown field",
        ),
    ];
    for (body, key, says) in cases {
        let p = parse_err(&format!("{GOOD}\n[[alerts.rules]]\n{body}\n"));
        assert_eq!(p[0].key.to_string(), *key, "{body}: {p:?}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
    }
}

#[test]
fn anomalies_are_watched_by_default_and_settings_are_checked() {
    let c = parse_ok(GOOD);
    assert!(c.anomalies.enabled);
    assert_eq!(c.anomalies.threshold, 0.85);
    assert!(c.anomalies.watches("error_ratio{route=\"chat\"}"));
    assert!(
        c.summary()
            .contains("  anomalies: requests_per_second{route=*, ")
    );
    let c = parse_ok(&format!(
        "{GOOD}\n[anomalies]\nseries = [\"latency_ms_p95*\"]\nthreshold = 0.8\nquiet = \"30m\"\nmax_series = 50\n"
    ));
    assert!(!c.anomalies.watches("error_ratio{route=\"chat\"}"));
    assert!(c.anomalies.watches("latency_ms_p95{pool=\"llm\"}"));
    assert_eq!(
        (
            c.anomalies.threshold,
            c.anomalies.quiet,
            c.anomalies.max_series
        ),
        (0.8, Duration::from_secs(1800), 50)
    );
    assert!(
        c.summary()
            .contains("  anomalies: latency_ms_p95* (at most 50 series), open at score 0.8, closed after 30m quiet"),
        "{}",
        c.summary()
    );
    for (body, key, says) in [
        ("series = [\"tea*\"]", "anomalies.series[0]", "matches none"),
        ("threshold = 0", "anomalies.threshold", "out of range"),
        ("quiet = \"10s\"", "anomalies.quiet", "at least 1m"),
        (
            "max_series = 100000",
            "anomalies.max_series",
            "out of range",
        ),
        ("window = \"1h\"", "anomalies.window", "unknown field"),
    ] {
        let p = parse_err(&format!("{GOOD}\n[anomalies]\n{body}\n"));
        assert_eq!(p[0].key.to_string(), key, "{body}: {p:?}");
        assert!(p[0].to_string().contains(says), "{body}: {}", p[0]);
    }
}

#[test]
fn a_redis_cluster_is_given_by_its_seed_nodes() {
    let on = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.redis]\ncluster = true\nurls = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\nlock_wait = \"0s\"\n"
    ));
    let r = on.cache.redis.as_ref().unwrap();
    assert!(r.link.cluster);
    assert_eq!(r.link.urls.len(), 2);
    assert_eq!(r.lock_wait, Duration::ZERO);
    assert!(
        on.summary()
            .contains("cache redis cluster: redis://127.0.0.1:7000, redis://127.0.0.1:7001")
    );
    for (body, key, says) in [
        (
            "urls = [\"redis://h:1\", \"redis://h:2\"]",
            "cache.redis.urls",
            "need cluster = true",
        ),
        (
            "url = \"redis://h:1\"\nurls = [\"redis://h:2\"]",
            "cache.redis.urls",
            "not both",
        ),
        ("urls = []", "cache.redis.url", "missing"),
        (
            "cluster = true\nurls = [\"redis://h:1\", \"h:2\"]",
            "cache.redis.urls",
            "\"h:2\"",
        ),
    ] {
        let p = parse_err(&format!(
            "{GOOD}\n[cache]\nenabled = true\n\n[cache.redis]\n{body}\n"
        ));
        assert_eq!(p[0].key.to_string(), key, "{body}");
        assert!(p[0].message.contains(says), "{body}: {}", p[0].message);
    }
}

#[test]
fn ttl_categories_and_confidence_bands_are_checked() {
    let on = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n\
         [[cache.categories]]\nname = \"cost\"\nheader = \"X-Analysis-Type\"\nvalue = \"cost\"\nttl = \"4h\"\nstale = \"5m\"\ntags = [\"cost\", \"team:finance\"]\n\n\
         [cache.confidence]\npointer = \"/confidence\"\nbands = [{{ min = 0.7, ttl = \"90m\" }}, {{ min = 0.9, ttl = \"4h\" }}, {{ min = 0, ttl = \"30m\" }}]\n"
    ));
    let c = &on.cache.categories[0];
    assert_eq!(c.header.as_ref().unwrap().0, "x-analysis-type");
    assert_eq!(c.tags, ["cost", "team:finance"]);
    assert_eq!(
        (c.ttl, c.stale),
        (
            Duration::from_secs(4 * 3600),
            Some(Duration::from_secs(300))
        )
    );
    let conf = on.cache.confidence.as_ref().unwrap();
    assert_eq!(conf.ttl_for(0.95), Some(Duration::from_secs(4 * 3600)));
    assert_eq!(conf.ttl_for(0.9), Some(Duration::from_secs(4 * 3600)));
    assert_eq!(conf.ttl_for(0.8), Some(Duration::from_secs(90 * 60)));
    assert_eq!(conf.ttl_for(0.1), Some(Duration::from_secs(30 * 60)));
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n\
         [[cache.categories]]\nname = \"a\"\nttl = \"1h\"\n\n\
         [[cache.categories]]\nname = \"a\"\nheader = \"x\"\nttl = \"1h\"\n\n\
         [[cache.categories]]\nname = \"b\"\nmodel = \"m\"\n\n\
         [[cache.categories]]\nname = \"c\"\nmodel = \"m\"\nttl = \"1h\"\ntags = [\"ok\", \"not ok\"]\n\n\
         [cache.confidence]\npointer = \"confidence\"\nbands = [{{ min = 1.5, ttl = \"1h\" }}]\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "cache.categories[0]",
            "cache.categories[1].name",
            "cache.categories[1].value",
            "cache.categories[2].ttl",
            "cache.categories[3].tags[1]",
            "cache.confidence.pointer",
            "cache.confidence.bands[0].min",
        ]
    );
}

#[test]
fn model_prices_are_read_and_checked() {
    let c = parse_ok(&format!(
        "{GOOD}\n[models.\"gpt-4o-mini\"]\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.6\n\n\
         [models.\"gpt-4o*\"]\ninput_usd_per_mtok = 2.5\noutput_usd_per_mtok = 10\n\n\
         [models.\"gpt-4o-mini-*\"]\ninput_usd_per_mtok = 0.2\noutput_usd_per_mtok = 0.7\n"
    ));
    let price = |m: &str| c.models.price(m).map(|p| p.input_usd_per_mtok.to_string());
    assert_eq!(price("gpt-4o-mini").as_deref(), Some("0.15"));
    // The longest prefix wins.
    assert_eq!(price("gpt-4o-mini-2024-07-18").as_deref(), Some("0.2"));
    assert_eq!(price("gpt-4o-2024-08-06").as_deref(), Some("2.5"));
    assert_eq!(price("claude-3"), None);
    let p = parse_err(&format!(
        "{GOOD}\n[models.\"a*b\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\n\
         [models.m]\ninput_usd_per_mtok = -1\n\n\
         [models.n]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\nother = 2\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    // The unknown key first, then what validation finds in the rest: all in one run.
    assert_eq!(
        keys,
        [
            "models.n.other",
            "models.a*b",
            "models.m.input_usd_per_mtok",
            "models.m.output_usd_per_mtok"
        ],
        "{p:?}"
    );
    let p = parse_err(&format!(
        "{GOOD}\n[models.\"a*b\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n\n\
         [models.m]\ninput_usd_per_mtok = -1\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "models.a*b",
            "models.m.input_usd_per_mtok",
            "models.m.output_usd_per_mtok"
        ],
        "{p:?}"
    );
}

#[test]
fn prices_are_decimals_as_written_and_anything_else_is_refused_with_its_line() {
    // A float is read as the decimal it was written as; a string may carry more digits
    // than a float holds.
    let c = parse_ok(&format!(
        "{GOOD}\n[models.\"cheap\"]\ninput_usd_per_mtok = 0.1\noutput_usd_per_mtok = \"0.0000001234567890123\"\n"
    ));
    let p = c.models.price("cheap").unwrap();
    assert_eq!(p.input_usd_per_mtok.to_string(), "0.1");
    assert_eq!(p.output_usd_per_mtok.to_string(), "0.0000001234567890123");
    for bad in ["\"ten\"", "\"1e3\"", "nan", "inf", "true", "\"2000000000\""] {
        let text = format!(
            "{GOOD}\n[models.\"cheap\"]\ninput_usd_per_mtok = {bad}\noutput_usd_per_mtok = 1\n"
        );
        let e = parse_err(&text);
        assert_eq!(
            e[0].key.to_string(),
            "models.cheap.input_usd_per_mtok",
            "{bad}: {e:?}"
        );
        assert!(
            matches!(e[0].location, error::Location::File { line: 32, .. }),
            "{bad}: {e:?}"
        );
        assert!(e[0].message.contains("US dollars"), "{bad}: {e:?}");
    }
}

#[test]
fn the_memory_tier_is_off_at_zero_only_with_a_lower_tier() {
    let p = parse_err(&format!("{GOOD}\n[cache]\nenabled = true\nmemory = 0\n"));
    assert_eq!(p[0].key.to_string(), "cache.memory");
    assert!(
        p[0].message.contains("no [cache.redis] or [cache.disk]"),
        "{}",
        p[0].message
    );
    let c = parse_ok(&format!(
        "{GOOD}\n[cache]\nenabled = true\nmemory = 0\nmax_entry = \"64MiB\"\n\n[cache.disk]\npath = \"/tmp/x.redb\"\n"
    ));
    assert_eq!(c.cache.memory_bytes, 0);
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\nmemory = \"512KiB\"\n"
    ));
    assert_eq!(p[0].key.to_string(), "cache.memory");
}

#[test]
fn warming_is_configured_and_checked() {
    let c = parse_ok(&format!("{GOOD}\n[cache]\nenabled = true\n"));
    assert_eq!(
        (
            c.cache.warm.file.as_ref(),
            c.cache.warm.rate,
            c.cache.warm.keep
        ),
        (None, 10, 1000)
    );
    assert!(
        c.summary()
            .contains("cache warm: no file, 10 per second, top-N keeps 1000")
    );
    let p = parse_err(&format!(
        "{GOOD}\n[cache]\nenabled = true\n\n[cache.warm]\nfile = \"/no/such/warm.jsonl\"\nrate = 0\nkeep = 1000000\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        ["cache.warm.file", "cache.warm.rate", "cache.warm.keep"]
    );
    assert!(p[0].message.contains("no such file /no/such/warm.jsonl"));
}

#[test]
fn rate_limits_are_read_and_checked() {
    let c = parse_ok(&format!(
        "{GOOD}\n[[rate_limits]]\nname = \"per-ip\"\nscope = \"ip\"\nrequests = 100\nper = \"1s\"\nburst = 10\nroutes = [\"chat\"]\n\n\
         [[rate_limits]]\nscope = \"header:x-team\"\nrequests = 1000\nper = \"1m\"\n\n\
         [[rate_limits]]\nname = \"tpm\"\nscope = \"model\"\ntokens = 90000\nper = \"1m\"\nroutes = [\"chat\"]\n"
    ));
    let l = &c.rate_limits;
    assert_eq!(
        (
            l[0].rate.unit,
            l[0].rate.amount,
            l[0].rate.burst,
            l[0].rate.per
        ),
        (LimitUnit::Requests, 100, 10, Duration::from_secs(1))
    );
    assert_eq!(
        (l[2].rate.unit, l[2].rate.amount, l[2].rate.burst),
        (LimitUnit::Tokens, 90_000, 90_000)
    );
    assert_eq!(l[0].scope, LimitScope::ClientIp);
    assert_eq!((l[1].name.as_str(), l[1].rate.burst), ("limit-1", 1000));
    assert!(matches!(&l[1].scope, LimitScope::Header(h) if h == "x-team"));
    assert!(
        c.summary()
            .contains("rate limit per-ip: 100 requests per 1s per ip, burst 10, routes chat"),
        "{}",
        c.summary()
    );
    let p = parse_err(&format!(
        "{GOOD}\n[[rate_limits]]\nscope = \"planet\"\nrequests = 0\nburst = 0\nroutes = [\"nope\"]\n\n\
         [[rate_limits]]\nname = \"limit-0\"\nrequests = 2000000000\nper = \"1s\"\n\n\
         [[rate_limits]]\nrequests = 1\ntokens = 1\n\n\
         [[rate_limits]]\ntokens = 100\nroutes = [\"route-1\"]\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "rate_limits[0].scope",
            "rate_limits[0].requests",
            "rate_limits[0].burst",
            "rate_limits[0].routes[0]",
            "rate_limits[1].per",
            "rate_limits[2].tokens",
            "rate_limits[3].routes[0]"
        ]
    );
    assert!(p[0].message.contains("header:NAME"), "{}", p[0].message);
    assert!(p[5].message.contains("not both"), "{}", p[5].message);
    assert!(p[6].message.contains("http route"), "{}", p[6].message);
}

#[test]
fn openai_routes_may_cap_the_prompt_size() {
    let c = parse_ok(&GOOD.replace(
        "name = \"chat\"\n",
        "name = \"chat\"\nmax_prompt_tokens = 8000\n",
    ));
    assert_eq!(c.routes[0].max_prompt_tokens, Some(8000));
    assert_eq!(c.routes[1].max_prompt_tokens, None);
    assert!(
        c.summary().contains("prompts up to 8000 tokens"),
        "{}",
        c.summary()
    );
    let p = parse_err(&GOOD.replace("kind = \"http\"", "kind = \"http\"\nmax_prompt_tokens = 10"));
    assert_eq!(p[0].key.to_string(), "routes[1].max_prompt_tokens");
    assert!(
        p[0].message.contains("openai routes only"),
        "{}",
        p[0].message
    );
    let p = parse_err(&GOOD.replace(
        "name = \"chat\"\n",
        "name = \"chat\"\nmax_prompt_tokens = 0\n",
    ));
    assert_eq!(p[0].key.to_string(), "routes[0].max_prompt_tokens");
}

const HASH: &str = "blake3:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn virtual_keys_are_configured_by_hash_with_routes_models_and_limits() {
    let c = parse_ok(&format!(
        "{GOOD}\n[auth]\nenabled = true\nstore = \"keys.redb\"\n\n\
         [[auth.keys]]\nname = \"checkout\"\nhash = \"{HASH}\"\nteam = \"shop\"\nroutes = [\"chat\"]\n\
         models = [\"gpt-4o*\", \"o3\"]\nlimits = [{{ requests = 10, per = \"1s\" }}, {{ tokens = 9000, per = \"1m\", burst = 4000 }}]\n\n\
         [[rate_limits]]\nscope = \"team\"\nrequests = 100\n"
    ));
    let a = &c.auth;
    assert!(a.enabled);
    assert_eq!(a.header, http::header::AUTHORIZATION);
    assert_eq!(a.store.as_deref(), Some(std::path::Path::new("keys.redb")));
    let k = &a.keys[0];
    assert_eq!(
        (k.name.as_str(), k.team.as_deref()),
        ("checkout", Some("shop"))
    );
    assert_eq!(format_key_hash(&k.hash), HASH);
    assert!(k.allows_route("chat") && !k.allows_route("route-1"));
    assert!(k.allows_model(Some("gpt-4o-mini")) && k.allows_model(Some("o3")));
    assert!(!k.allows_model(Some("o3-mini")) && k.allows_model(None));
    assert_eq!(
        k.limits[1],
        Rate {
            unit: LimitUnit::Tokens,
            amount: 9000,
            per: Duration::from_secs(60),
            burst: 4000
        }
    );
    assert_eq!(c.rate_limits[0].scope, LimitScope::Team);
    assert!(
        c.summary()
            .contains("auth: virtual keys in authorization, 1 key(s)")
    );
    assert!(parse_ok(GOOD).summary().contains("auth: off"));

    let p = parse_err(&format!(
        "{GOOD}\n[auth]\nenabled = true\nheader = \"bad header\"\n\n\
         [[auth.keys]]\nname = \"a\"\nhash = \"sha256:abc\"\n\n\
         [[auth.keys]]\nname = \"a\"\nroutes = [\"nope\"]\nmodels = [\"g*x\"]\nlimits = [{{ requests = 0 }}]\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "auth.header",
            "auth.keys[0].hash",
            "auth.keys[1].hash",
            "auth.keys[1].routes[0]",
            "auth.keys[1].models[0]",
            "auth.keys[1].limits[0].requests",
            "auth.keys[1].name"
        ]
    );
    assert!(p[2].message.contains("never written in plain text"));
    assert!(p[6].message.contains("duplicate key name"));
    let p = parse_err(&format!("{GOOD}\n[auth]\nenabled = true\n"));
    assert_eq!(p[0].key.to_string(), "auth.enabled");
}

#[test]
fn upstream_keys_come_from_the_environment_and_are_never_shown() {
    let src = GOOD.replace(
        "name = \"b\" }",
        "name = \"b\", api_key_env = \"UP_KEY\", api_key_header = \"x-api-key\" }",
    );
    let env = [("UP_KEY".to_string(), "sk-canary-123".to_string())];
    let c = parse(&src, "flowgate.toml", env).unwrap();
    let k = c.pools[0].endpoints[1].api_key.as_ref().unwrap();
    assert_eq!(
        (k.header.as_str(), k.secret.expose()),
        ("x-api-key", "sk-canary-123")
    );
    let shown = format!("{c:?}\n{}", c.summary());
    assert!(!shown.contains("sk-canary"), "{shown}");
    assert!(
        c.summary().contains("b (key $UP_KEY in x-api-key)"),
        "{}",
        c.summary()
    );

    let p = parse_err(&src);
    assert_eq!(p[0].key.to_string(), "pools.llm.endpoints[1].api_key_env");
    assert!(
        p[0].message.contains("UP_KEY is not set"),
        "{}",
        p[0].message
    );
    let p = parse_env_err(&src, &[("UP_KEY", "bad\nvalue-canary")]);
    assert!(p[0].message.contains("cannot carry") && !p[0].message.contains("canary"));
}

#[test]
fn concurrency_limits_are_set_on_routes_pools_and_keys() {
    let c = parse_ok(&(GOOD
        .replace(
            "request_timeout = \"30s\"\n",
            "request_timeout = \"30s\"\nconcurrency = { limit = 20, queue = 100, queue_timeout = \"10s\", adaptive = { min = 4, max = 200 } }\n",
        )
        .replace(
            "name = \"chat\"\n",
            "name = \"chat\"\nconcurrency = { limit = 8, burst = 2 }\n",
        )
        + "\n[auth]\nenabled = true\n\n[[auth.keys]]\nname = \"k\"\nhash = \"blake3:0000000000000000000000000000000000000000000000000000000000000000\"\nconcurrency = { limit = 3 }\npriority = \"high\"\n"));
    let pool = c.pools[0].concurrency.unwrap();
    assert_eq!((pool.limit, pool.queue, pool.burst), (20, 100, 0));
    assert_eq!(pool.queue_timeout, Duration::from_secs(10));
    assert_eq!(pool.adaptive, Some(AdaptiveConfig { min: 4, max: 200 }));
    let route = c.routes[0].concurrency.unwrap();
    // The queue defaults to the limit, the timeout to 30 s.
    assert_eq!((route.limit, route.burst, route.queue), (8, 2, 8));
    assert_eq!(route.queue_timeout, Duration::from_secs(30));
    assert_eq!(c.auth.keys[0].concurrency.unwrap().limit, 3);
    assert_eq!(c.auth.keys[0].priority, Some(Priority::High));
    let summary = c.summary();
    assert!(
        summary.contains("concurrency 20, queue 100 / 10s, adaptive 4-200"),
        "{summary}"
    );
    assert!(
        summary.contains("concurrency 8 (+2 burst), queue 8 / 30s"),
        "{summary}"
    );

    for (route_c, key, says) in [
        ("{ queue = 3 }", "routes[0].concurrency.limit", "missing"),
        ("{ limit = 0 }", "routes[0].concurrency.limit", "at least 1"),
        (
            "{ limit = 2, queue_timeout = \"0s\" }",
            "routes[0].concurrency.queue_timeout",
            "",
        ),
        (
            "{ limit = 2, adaptive = { max = 9 } }",
            "routes[0].concurrency.adaptive",
            "per upstream pool",
        ),
        (
            "{ limit = 2, queue_size = 9 }",
            "routes[0].concurrency.queue_size",
            "unknown field",
        ),
    ] {
        let p = parse_err(&GOOD.replace(
            "name = \"chat\"\n",
            &format!("name = \"chat\"\nconcurrency = {route_c}\n"),
        ));
        assert_eq!(p[0].key.to_string(), key, "{route_c}");
        assert!(p[0].to_string().contains(says), "{route_c}: {}", p[0]);
    }
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nconcurrency = { limit = 500, adaptive = { min = 4, max = 200 } }\n",
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.concurrency.limit");
    assert!(
        p[0].to_string()
            .contains("within adaptive min 4 and max 200")
    );
    let p = parse_err(&format!(
        "{GOOD}\n[auth]\nenabled = true\n\n[[auth.keys]]\nname = \"k\"\nhash = \"blake3:0000000000000000000000000000000000000000000000000000000000000000\"\npriority = \"urgent\"\n"
    ));
    assert_eq!(p[0].key.to_string(), "auth.keys[0].priority");
    assert!(
        p[0].to_string()
            .contains("\"critical\", \"high\", \"normal\" or \"low\"")
    );
}

#[test]
fn pools_choose_a_balancing_strategy() {
    let c = parse_ok(GOOD);
    assert_eq!(c.pools[0].strategy, BalanceStrategy::P2cEwma);
    assert_eq!(c.pools[0].hash_header, "x-session-id");
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nstrategy = \"consistent_hash\"\nhash_header = \"X-User\"\n",
    ));
    assert_eq!(c.pools[0].strategy, BalanceStrategy::ConsistentHash);
    assert_eq!(c.pools[0].hash_header, "x-user");
    assert!(
        c.summary().contains("by consistent_hash on x-user"),
        "{}",
        c.summary()
    );
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nstrategy = \"fastest\"\nhash_header = \"a b\"\n",
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.strategy");
    assert!(
        p[0].to_string()
            .contains("round_robin, weighted, least_loaded, p2c_ewma, consistent_hash, random"),
        "{}",
        p[0]
    );
    assert_eq!(p[1].key.to_string(), "pools.llm.hash_header");
}

#[test]
fn pools_eject_outliers_by_default_and_as_configured() {
    let c = parse_ok(GOOD);
    assert_eq!(c.pools[0].outlier, OutlierConfig::default());
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\noutlier = { consecutive_failures = 3, base_ejection = \"10s\", max_ejection = \"1m\", max_ejected_percent = 34 }\n",
    ));
    let o = c.pools[0].outlier;
    assert_eq!((o.consecutive_failures, o.max_ejected_percent), (3, 34));
    assert_eq!(
        (o.base_ejection, o.max_ejection),
        (Duration::from_secs(10), Duration::from_secs(60))
    );
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\noutlier = { base_ejection = \"1m\", max_ejection = \"10s\", max_ejected_percent = 150 }\n",
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.outlier.max_ejection");
    assert!(p[0].to_string().contains("shorter than base_ejection"));
    assert_eq!(
        p[1].key.to_string(),
        "pools.llm.outlier.max_ejected_percent"
    );
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\noutlier = { failure_percent = 30, failure_min_requests = 50, failure_window = \"1m\", half_open_probes = 1 }\n",
    ));
    let o = c.pools[0].outlier;
    assert_eq!(
        (
            o.failure_percent,
            o.failure_min_requests,
            o.half_open_probes
        ),
        (30, 50, 1)
    );
    assert_eq!(o.failure_window, Duration::from_secs(60));
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\noutlier = { failure_percent = 101, failure_window = \"0s\", half_open_probes = 0 }\n",
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "pools.llm.outlier.failure_window",
            "pools.llm.outlier.failure_percent",
            "pools.llm.outlier.half_open_probes"
        ]
    );
}

#[test]
fn pools_retry_by_default_and_as_configured() {
    let c = parse_ok(GOOD);
    let r = &c.pools[0].retries;
    assert_eq!(*r, RetryConfig::default());
    assert_eq!(r.attempts, 2);
    assert_eq!(r.on.names(), ["connect", "429", "502", "503", "504"]);
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nretries = { attempts = 4, on = [\"reset\", \"5xx\", \"429\"], backoff_base = \"10ms\", backoff_max = \"1s\", budget_percent = 10, budget_min_per_second = 0 }\n",
    ));
    let r = &c.pools[0].retries;
    assert_eq!(
        (r.attempts, r.budget_percent, r.budget_min_per_second),
        (4, 10, 0)
    );
    assert!(r.on.reset && !r.on.connect && r.on.status(500) && r.on.status(429));
    assert!(!r.on.status(404));
    assert_eq!(r.on.names(), ["reset", "5xx", "429"]);
    assert_eq!(
        (r.backoff_base, r.backoff_max),
        (Duration::from_millis(10), Duration::from_secs(1))
    );
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nretries = { attempts = 0, on = [\"404\", \"timeout\", \"sometimes\"], backoff_base = \"1s\", backoff_max = \"10ms\", budget_percent = 120 }\n",
    ));
    let msgs: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "pools.llm.retries.on[0]",
            "pools.llm.retries.on[1]",
            "pools.llm.retries.on[2]",
            "pools.llm.retries.attempts",
            "pools.llm.retries.backoff_max",
            "pools.llm.retries.budget_percent",
        ],
        "{msgs:#?}"
    );
    assert!(msgs[0].contains("the request's fault"), "{}", msgs[0]);
    assert!(msgs[1].contains("fallback, not a retry"), "{}", msgs[1]);
    assert!(msgs[2].contains("expected \"connect\""), "{}", msgs[2]);
}

#[test]
fn routes_fall_back_along_a_chain_and_hedge() {
    const TWO_POOLS: &str = "[pools.mini]\nendpoints = [{ url = \"http://127.0.0.1:18083\" }]\n\n[[routes]]\nname = \"chat\"";
    let with = |route_extra: &str| {
        GOOD.replace("[[routes]]\nname = \"chat\"", TWO_POOLS)
            .replace(
                "pool = \"llm\"\n\n[[routes]]\nkind",
                &format!("pool = \"llm\"\n{route_extra}\n\n[[routes]]\nkind"),
            )
    };
    let c = parse_ok(&with(
        "fallback = [{ pool = \"mini\", model = \"gpt-4o-mini\" }]\nfallback_on = [\"connect\", \"503\"]\nhedge = { after = \"p95\" }",
    ));
    let r = &c.routes[0];
    assert_eq!(
        r.fallback,
        [Fallback {
            pool: "mini".into(),
            model: Some("gpt-4o-mini".into())
        }]
    );
    assert_eq!(r.fallback_on.names(), ["connect", "503"]);
    assert_eq!(r.hedge.map(|h| h.after), Some(HedgeAfter::Quantile(9500)));
    assert_eq!(r.hedge.unwrap().after.quantile(), Some(0.95));
    // Every failure moves down the chain unless the route says otherwise; no hedging.
    let c = parse_ok(&with("fallback = [{ pool = \"mini\" }]"));
    assert_eq!(
        c.routes[0].fallback_on.names(),
        ["connect", "reset", "timeout", "5xx", "429"]
    );
    assert_eq!(c.routes[0].hedge, None);
    let c = parse_ok(&with("hedge = { after = \"250ms\" }"));
    assert_eq!(
        c.routes[0].hedge.unwrap().after,
        HedgeAfter::Fixed(Duration::from_millis(250))
    );
    let p = parse_err(&with(
        "fallback = [{ pool = \"nope\" }, { pool = \"llm\" }, { pool = \"mini\", model = \" \" }]\nfallback_on = [\"400\"]\nhedge = { after = \"p100\" }",
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "routes[0].fallback[0].pool",
            "routes[0].fallback[1].pool",
            "routes[0].fallback[2].model",
            "routes[0].fallback_on[0]",
            "routes[0].hedge.after",
        ]
    );
    assert!(p[0].to_string().contains("unknown pool \"nope\""));
    assert!(p[1].to_string().contains("already in this route's chain"));
    // A model applies to openai routes only.
    let p = parse_err(&GOOD.replace(
        "headers = { \"x-tenant\" = \"a\" }\npool = \"llm\"",
        "headers = { \"x-tenant\" = \"a\" }\npool = \"llm\"\nfallback = [{ pool = \"llm\", model = \"m\" }]",
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[1].key.to_string(), "routes[1].fallback[0].model");
}

#[test]
fn pools_pick_endpoints_by_tag() {
    assert_eq!(parse_ok(GOOD).pools[0].tag_by, None);
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\ntag_by = \"header:X-Analysis-Type\"\ntag_fallback = false\n",
    ));
    assert_eq!(
        c.pools[0].tag_by,
        Some(TagBy::Header(http::HeaderName::from_static(
            "x-analysis-type"
        )))
    );
    assert!(!c.pools[0].tag_fallback);
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\ntag_by = \"model\"\n",
    ));
    assert_eq!(c.pools[0].tag_by, Some(TagBy::Model));
    assert!(c.pools[0].tag_fallback);
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\ntag_by = \"cookie:x\"\n",
    ));
    assert_eq!(p[0].key.to_string(), "pools.llm.tag_by");
    assert!(
        p[0].to_string()
            .contains("expected \"model\" or \"header:NAME\"")
    );
}

#[test]
fn pools_keep_sessions_on_their_endpoint_when_asked() {
    assert_eq!(parse_ok(GOOD).pools[0].affinity, None);
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\naffinity = { max_sessions = 5 }\n",
    ));
    assert_eq!(
        c.pools[0].affinity,
        Some(AffinityConfig {
            header: http::HeaderName::from_static("x-session-id"),
            max_sessions: 5,
            idle_timeout: Duration::from_secs(1800),
        })
    );
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\naffinity = { header = \"a b\", idle_timeout = \"0s\" }\n",
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "pools.llm.affinity.header",
            "pools.llm.affinity.idle_timeout"
        ]
    );
}

#[test]
fn endpoints_have_priorities_and_pools_a_client_region() {
    let c = parse_ok(GOOD);
    assert_eq!(c.pools[0].endpoints[0].priority, 0);
    assert_eq!(c.pools[0].overprovisioning, 140);
    assert_eq!(
        (
            c.server.region.as_deref(),
            c.pools[0].region_header.as_ref()
        ),
        (None, None)
    );
    let c = parse_ok(
        &GOOD
            .replace("workers = 3\n", "workers = 3\nregion = \"eu\"\n")
            .replace("name = \"b\" }", "name = \"b\", priority = 1 }")
            .replace(
                "request_timeout = \"30s\"\n",
                "request_timeout = \"30s\"\nregion_header = \"X-Client-Region\"\noverprovisioning = 1.2\n",
            ),
    );
    let p = &c.pools[0];
    assert_eq!(p.endpoints[1].priority, 1);
    assert_eq!(p.local_region.as_deref(), Some("eu"));
    assert_eq!(p.region_header.as_ref().unwrap(), "x-client-region");
    assert_eq!(p.overprovisioning, 120);
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nregion_header = \"a b\"\noverprovisioning = 0.5\n",
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        ["pools.llm.region_header", "pools.llm.overprovisioning"]
    );
}

#[test]
fn pools_may_check_their_endpoints_health() {
    assert_eq!(parse_ok(GOOD).pools[0].health_check, None);
    let c = parse_ok(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nhealth_check = { path = \"/v1/models\" }\n",
    ));
    assert_eq!(
        c.pools[0].health_check,
        Some(HealthCheckConfig {
            path: "/v1/models".into(),
            expect: 200,
            interval: Duration::from_secs(10),
            jitter: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            healthy: 2,
            unhealthy: 3,
        })
    );
    let p = parse_err(&GOOD.replace(
        "request_timeout = \"30s\"\n",
        "request_timeout = \"30s\"\nhealth_check = { path = \"health\", expect = 99, interval = \"1s\", timeout = \"5s\", healthy = 0 }\n",
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "pools.llm.health_check.path",
            "pools.llm.health_check.expect",
            "pools.llm.health_check.timeout",
            "pools.llm.health_check.healthy"
        ]
    );
}

#[test]
fn admin_tokens_scopes_and_open_endpoints_are_checked() {
    let h = format!("blake3:{}", "ab".repeat(32));
    let c = parse_ok(&format!(
        "[admin]\nopen = [\"metrics\"]\nallowed_hosts = [\"Admin.Corp\"]\n[[admin.tokens]]\nname = \"ops\"\nscope = \"write\"\nhash = \"{h}\"\n"
    ));
    let a = &c.admin;
    assert!(a.requires_token());
    assert_eq!(a.tokens[0].scope, AdminScope::Write);
    assert!(a.open_metrics && !a.open_health && !a.open_ready);
    assert_eq!(a.allowed_hosts, ["admin.corp"]);
    assert!(
        c.summary()
            .contains("admin: 1 token(s) (ops write); open without one: /metrics"),
        "{}",
        c.summary()
    );

    let p = parse_err(
        "[admin]\nopen = [\"keys\"]\n[[admin.tokens]]\nname = \"x\"\nscope = \"root\"\nhash = \"md5:1\"\n",
    );
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert!(keys.contains(&"admin.open[0]".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"admin.tokens[0].hash".to_string()),
        "{keys:?}"
    );
    let p = parse_err(&format!(
        "[[admin.tokens]]\nname = \"x\"\nscope = \"root\"\nhash = \"{h}\"\n"
    ));
    let scope = p
        .iter()
        .find(|p| p.key.to_string() == "admin.tokens[0].scope")
        .expect("the scope named");
    assert!(
        scope.message.contains("\"metrics\", \"read\" or \"write\""),
        "{}",
        scope.message
    );
    let scraper = parse_ok(&format!(
        "[[admin.tokens]]\nname = \"prom\"\nscope = \"metrics\"\nhash = \"{h}\"\n"
    ));
    assert_eq!(scraper.admin.tokens[0].scope, AdminScope::Metrics);

    let open = parse(
        "[server]\nadmin_listen = \"0.0.0.0:9090\"\n",
        "f.toml",
        std::iter::empty(),
    )
    .unwrap();
    assert!(
        open.summary()
            .contains("WARNING: server.admin_listen 0.0.0.0:9090 is not a loopback"),
        "{}",
        open.summary()
    );
    let env = [("FLOWGATE_ADMIN_TOKEN".to_string(), "t".to_string())];
    let with = parse("[server]\nadmin_listen = \"0.0.0.0:9090\"\n", "f.toml", env).unwrap();
    assert!(!with.summary().contains("WARNING"), "{}", with.summary());
    assert!(
        with.summary().contains("$FLOWGATE_ADMIN_TOKEN (write)"),
        "{}",
        with.summary()
    );
    assert!(
        !with.summary().contains("\"t\""),
        "the token is never shown"
    );
}

#[test]
fn the_shipped_catalog_is_extended_and_overridden_by_the_config() {
    let c = parse_ok(&format!(
        "{GOOD}\n[models.\"claude-3-5-haiku-latest\"]\noutput_usd_per_mtok = 5\naliases = [\"fast\"]\nmax_output = 1000\n\n\
         [models.\"my-llama\"]\ninput_usd_per_mtok = 0\noutput_usd_per_mtok = 0\ncontext_window = 8192\n"
    ));
    // By alias: one price changed, the others kept; a new alias; the id unchanged.
    let haiku = c.models.get("fast").unwrap();
    assert_eq!(haiku.id, "claude-3-5-haiku-20241022");
    let p = haiku.price.unwrap();
    assert_eq!(
        (
            p.input_usd_per_mtok.to_string(),
            p.output_usd_per_mtok.to_string()
        ),
        ("0.8".to_string(), "5".to_string())
    );
    assert_eq!(haiku.max_output, Some(1000));
    assert!(c.models.get("claude-3-5-haiku-latest").is_some());
    // A model of its own, with its prices.
    let llama = c.models.get("my-llama").unwrap();
    assert_eq!(llama.context_window, Some(8192));
    assert!(llama.capabilities.chat);
    assert!(!c.models.version.is_empty());
    // An alias that is another model's, a capability that does not exist, a prefix with
    // more than prices, a zero-token window.
    let p = parse_err(&format!(
        "{GOOD}\n[models.\"gpt-4o\"]\naliases = [\"gpt-4o-mini\"]\ncapabilities = [\"telepathy\"]\n\n\
         [models.\"gpt-*\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\ncontext_window = 5\n\n\
         [models.\"o3\"]\ncontext_window = 0\n"
    ));
    let keys: Vec<String> = p.iter().map(|p| p.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "models.gpt-*",
            "models.gpt-4o.capabilities",
            "models.gpt-4o.aliases",
            "models.o3.context_window"
        ],
        "{p:?}"
    );
}

#[test]
fn an_endpoints_key_may_come_from_a_file_next_to_the_config() {
    let dir = std::env::temp_dir().join(format!("flowgate-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openai.key"), "sk-from-file\n").unwrap();
    let origin = dir.join("flowgate.toml");
    let origin = origin.to_str().unwrap();
    let with = |ep: &str| {
        GOOD.replace(
            "  { url = \"http://127.0.0.1:18082/base/\", name = \"b\" },",
            &format!("  {{ url = \"http://127.0.0.1:18082/base/\", name = \"b\", {ep} }},"),
        )
    };
    // Relative to the config's directory; the trailing newline trimmed; shown by its path.
    let c = parse(
        &with("api_key_file = \"openai.key\""),
        origin,
        std::iter::empty(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let k = c.pools[0].endpoints[1].api_key.as_ref().unwrap();
    assert_eq!(k.secret.expose(), "sk-from-file");
    assert!(k.secret.env_var().is_none());
    let shown = format!("{} {:?} {}", k.secret, k.secret, c.summary());
    assert!(
        !shown.contains("sk-from-file") && shown.contains("openai.key"),
        "{shown}"
    );
    // A file that is not there, or both sources at once.
    for (ep, want) in [
        ("api_key_file = \"missing.key\"", "cannot read"),
        (
            "api_key_file = \"openai.key\", api_key_env = \"X\"",
            "not both",
        ),
    ] {
        let e = parse(&with(ep), origin, std::iter::empty()).unwrap_err();
        let p = &e.problems()[0];
        assert_eq!(p.key.to_string(), "pools.llm.endpoints[1].api_key_file");
        assert!(p.message.contains(want), "{}", p.message);
    }
    // Never read through the admin API.
    let spec: crate::EndpointSpec = toml::from_str(&format!(
        "url = \"http://127.0.0.1:1\"\napi_key_file = \"{}\"",
        dir.join("openai.key").display()
    ))
    .unwrap();
    let err = crate::endpoint_from_spec(spec, &[]).unwrap_err();
    assert!(err[0].1.contains("admin API"), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

const COST: &str = "\n[[auth.keys]]\nname = \"alice\"\nhash = \"blake3:0000000000000000000000000000000000000000000000000000000000000000\"\nteam = \"red\"\n\n\
                    [[cost.tiers]]\nname = \"premium\"\nmodels = [\"gpt-4o\", \"claude-sonnet-4-5\"]\n\n\
                    [[cost.tiers]]\nname = \"economy\"\nmodels = [\"gpt-4o-mini\"]\n";

#[test]
fn budgets_and_tiers_are_read_with_their_actions_in_order() {
    let c = parse_ok(&format!(
        "{GOOD}{COST}\n[[cost.budgets]]\nname = \"emergency\"\nlimit_usd = 1000\nwindow = \"hour\"\n\
         actions = [{{ at = 100, do = \"downgrade\", to = \"cheapest\", spare = [\"critical\"] }}, {{ at = 10, do = \"notify\" }}]\n\n\
         [[cost.budgets]]\nname = \"alice-daily\"\nscope = \"key\"\nmatch = \"alice\"\nlimit_usd = \"2.50\"\n\
         window = \"day\"\ntimezone = \"Europe/Berlin\"\nactions = [{{ at = 100, do = \"block\" }}]\n"
    ));
    let tiers: Vec<(&str, Vec<&str>)> = c
        .cost
        .tiers
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.models.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    // Aliases are the catalog's ids.
    assert_eq!(
        tiers,
        [
            ("premium", vec!["gpt-4o", "claude-sonnet-4-5-20250929"]),
            ("economy", vec!["gpt-4o-mini"])
        ]
    );
    let [e, a] = c.cost.budgets.as_slice() else {
        panic!("{:?}", c.cost.budgets)
    };
    assert_eq!(
        (e.scope, e.window),
        (BudgetScope::Global, BudgetWindow::Hour)
    );
    assert_eq!(
        e.actions[0].kind,
        ActionKind::Notify,
        "lowest threshold first"
    );
    assert_eq!(
        e.actions[1].kind,
        ActionKind::Downgrade {
            to: DowngradeTo::Cheapest,
            spare: vec![Priority::Critical]
        }
    );
    assert_eq!(
        (a.scope, a.value.as_deref()),
        (BudgetScope::Key, Some("alice"))
    );
    assert_eq!(a.limit_usd.to_string(), "2.5");
    assert_eq!(a.timezone_name, "Europe/Berlin");
}

#[test]
fn bad_budgets_tiers_and_policies_name_their_keys() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[cost.budgets]]\nscope = \"key\"\nmatch = \"mallory\"\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].match",
            "unknown key",
        ),
        (
            "[[cost.budgets]]\nscope = \"team\"\nmatch = \"green\"\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].match",
            "unknown team",
        ),
        (
            "[[cost.budgets]]\nscope = \"route\"\nmatch = \"nope\"\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].match",
            "unknown route",
        ),
        (
            "[[cost.budgets]]\nscope = \"model\"\nmatch = \"gpt-17\"\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].match",
            "unknown model",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 120, do = \"block\" }]\n",
            "cost.budgets[0].actions[0].at",
            "out of range",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = -5, do = \"block\" }]\n",
            "cost.budgets[0].actions[0].at",
            "out of range",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = \"lots\"\nwindow = \"day\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].limit_usd",
            "US dollars",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = 1\nwindow = \"week\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].window",
            "unknown window",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = 1\nwindow = \"day\"\ntimezone = \"Mars/Olympus\"\nactions = [{ at = 100, do = \"block\" }]\n",
            "cost.budgets[0].timezone",
            "unknown time zone",
        ),
        (
            "[[cost.budgets]]\nlimit_usd = 1\nwindow = \"day\"\nactions = [{ at = 100, do = \"panic\" }]\n",
            "cost.budgets[0].actions[0].do",
            "unknown action",
        ),
        (
            "[[cost.tiers]]\nname = \"empty\"\nmodels = []\n",
            "cost.tiers[2].models",
            "has no model",
        ),
        (
            "[[cost.tiers]]\nname = \"odd\"\nmodels = [\"gpt-17\"]\n",
            "cost.tiers[2].models[0]",
            "unknown model",
        ),
    ];
    for (extra, key, says) in cases {
        let e = parse_err(&format!("{GOOD}{COST}\n{extra}"));
        assert_eq!(e[0].key.to_string(), *key, "{extra}: {e:?}");
        assert!(e[0].message.contains(says), "{extra}: {e:?}");
        assert!(
            matches!(e[0].location, error::Location::File { .. }),
            "{extra}: {e:?}"
        );
    }
    let policy = GOOD.replacen(
        "pool = \"llm\"\n",
        "pool = \"llm\"\nmodel_policy = { by_priority = { critical = \"gold\" } }\n",
        1,
    );
    let e = parse_err(&format!("{policy}{COST}"));
    assert_eq!(
        e[0].key.to_string(),
        "routes[0].model_policy.by_priority.critical",
        "{e:?}"
    );
    assert!(e[0].message.contains("unknown tier"), "{e:?}");
    let ok = GOOD.replacen(
        "pool = \"llm\"\n",
        "pool = \"llm\"\nmodel_policy = { by_priority = { low = \"economy\" }, auto = true }\n",
        1,
    );
    let c = parse_ok(&format!("{ok}{COST}"));
    let p = c.routes[0].model_policy.as_ref().unwrap();
    assert_eq!(p.by_priority, [(Priority::Low, "economy".to_string())]);
    assert!(p.auto);
}

#[test]
fn shaping_is_read_and_bad_shaping_names_its_key() {
    let shaped = GOOD.replacen(
        "pool = \"llm\"\n",
        "pool = \"llm\"\nshaping = { compact_whitespace = true, max_tokens_default = 256, max_tokens_cap = 1024, temperature = [0.0, 0.7], drop = [\"user\"] }\n",
        1,
    );
    let c = parse_ok(&shaped);
    let s = &c.routes[0].shaping;
    assert!(s.compact_whitespace);
    assert_eq!(
        (s.max_tokens_default, s.max_tokens_cap),
        (Some(256), Some(1024))
    );
    assert_eq!(s.temperature, Some((0.0, 0.7)));
    assert_eq!(s.drop, ["user"]);
    assert!(
        c.summary()
            .contains("shaped (whitespace compacted; max_tokens 256 by default")
    );
    for (bad, key, says) in [
        (
            "{ temperature = [0.9, 0.1] }",
            "routes[0].shaping.temperature",
            "low <= high",
        ),
        (
            "{ temperature = [0.0, 3.0] }",
            "routes[0].shaping.temperature",
            "<= 2",
        ),
        (
            "{ drop = [\"messages\"] }",
            "routes[0].shaping.drop[0]",
            "cannot do without",
        ),
        (
            "{ max_tokens_cap = 0 }",
            "routes[0].shaping.max_tokens_cap",
            "at least 1",
        ),
        (
            "{ max_tokens_default = 500, max_tokens_cap = 100 }",
            "routes[0].shaping.max_tokens_default",
            "above the cap",
        ),
        ("{ squeeze = true }", "routes[0].shaping.squeeze", ""),
    ] {
        let text = GOOD.replacen(
            "pool = \"llm\"\n",
            &format!("pool = \"llm\"\nshaping = {bad}\n"),
            1,
        );
        let e = parse_err(&text);
        assert_eq!(e[0].key.to_string(), key, "{bad}: {e:?}");
        assert!(e[0].message.contains(says), "{bad}: {e:?}");
    }
    // Shaping rewrites OpenAI bodies: an http route has none to shape.
    let http = GOOD.replacen(
        "prefix = \"/api\"\n",
        "prefix = \"/api\"\nshaping = { compact_whitespace = true }\n",
        1,
    );
    let e = parse_err(&http);
    assert_eq!(e[0].key.to_string(), "routes[1].shaping", "{e:?}");
}

#[test]
fn scaling_is_read_with_its_defaults_and_bad_settings_name_their_keys() {
    let c = parse_ok(&format!(
        "{GOOD}\n[scaling]\ninterval = \"15s\"\n\n[scaling.pools.llm]\nper_replica = {{ requests_per_second = 20 }}\nmax = 12\nlead = \"3m\"\n"
    ));
    let s = &c.scaling;
    assert_eq!(s.interval, Duration::from_secs(15));
    let p = &s.pools[0];
    assert_eq!(
        (p.pool.as_str(), p.per_replica, p.replicas),
        ("llm", crate::PerReplica::RequestsPerSecond(20.0), None)
    );
    assert_eq!(
        p.policy,
        crate::ScalingPolicy {
            max: 12,
            lead: Some(Duration::from_secs(180)),
            ..crate::ScalingPolicy::default()
        }
    );
    assert!(
        c.summary()
            .contains("scaling pool llm: 1–12 replicas of 20 requests/s, up past 80%, down under 30%, ahead by 3m"),
        "{}",
        c.summary()
    );
    // Flowgate itself: told its replicas, its demand its requests in flight.
    let me = parse_ok(&format!(
        "{GOOD}\n[scaling.gateway]\nreplicas = 3\nper_replica = {{ in_flight = 200 }}\nmax = 20\n"
    ));
    let g = &me.scaling.pools[0];
    assert_eq!(
        (g.pool.as_str(), g.per_replica, g.replicas),
        ("flowgate", crate::PerReplica::InFlight(200.0), Some(3))
    );
    assert!(
        me.summary().contains(
            "scaling flowgate itself (3 replica(s) now): 1–20 replicas of 200 requests in flight"
        ),
        "{}",
        me.summary()
    );
    let per = "per_replica = { requests_per_second = 20 }";
    let cases: &[(&str, &str, &str)] = &[
        (
            "[scaling.pools.tea]\nper_replica = { requests_per_second = 1 }",
            "scaling.pools.tea",
            "no pool \"tea\"",
        ),
        (
            "[scaling.pools.llm]\nmin = 5\nmax = 2",
            "scaling.pools.llm.min",
            "above max 2",
        ),
        (
            "[scaling.pools.llm]\ntarget = 0.9",
            "scaling.pools.llm.target",
            "must hold",
        ),
        (
            "[scaling.pools.llm]\nup_at = -1.0",
            "scaling.pools.llm.up_at",
            "not a utilization",
        ),
        (
            "[scaling.pools.llm]\nmax_step_down = 0",
            "scaling.pools.llm.max_step_down",
            "at least 1",
        ),
        (
            "[scaling.pools.llm]\nlead = \"0s\"",
            "scaling.pools.llm.lead",
            "from 1s to 24h",
        ),
        (
            "[scaling.pools.llm]\nmin = 1\n# per_replica left out",
            "scaling.pools.llm.per_replica",
            "missing",
        ),
        (
            "[scaling.pools.llm]\nper_replica = { requests_per_second = 0 }",
            "scaling.pools.llm.per_replica.requests_per_second",
            "not an amount above 0",
        ),
        (
            "[scaling.pools.llm]\nper_replica = { in_flight = 10 }",
            "scaling.pools.llm.per_replica",
            "one of { requests_per_second = 20 }",
        ),
        (
            "[scaling.pools.llm]\nreplicas = 3\nper_replica = { requests_per_second = 1 }",
            "scaling.pools.llm.replicas",
            "a pool's replicas are its endpoints",
        ),
        (
            "[scaling.gateway]\nper_replica = { requests_per_second = 1000 }",
            "scaling.gateway.per_replica",
            "one of { in_flight = 200 }",
        ),
        (
            "[scaling.gateway]\nper_replica = { in_flight = 100, cpu_cores = 2 }",
            "scaling.gateway.per_replica",
            "one of { in_flight = 200 }",
        ),
        (
            "[scaling.gateway]\nreplicas = 0\nper_replica = { cpu_cores = 2 }",
            "scaling.gateway.replicas",
            "at least 1",
        ),
        (
            "[scaling.gateway]\nper_replica = { cpu_cores = 2 }\nactuator = { command = [\"sh\"], register = true }",
            "scaling.gateway.actuator.register",
            "not endpoints of a pool",
        ),
        (
            "[scaling.pools.llm]\nper_replica = { gpus = 2 }",
            "scaling.pools.llm.per_replica.gpus",
            "unknown field `gpus`, expected one of `requests_per_second`, `in_flight`, `cpu_cores`",
        ),
        (
            "[scaling]\ninterval = \"0s\"",
            "scaling.interval",
            "from 1s to 1h",
        ),
        (
            "[scaling.pools.llm]\nactuator = { command = [\"/nonexistent/scale\"] }",
            "scaling.pools.llm.actuator.command",
            "not an executable file, nor found in PATH",
        ),
        (
            "[scaling.pools.llm]\nactuator = { command = [\"sh\"], webhook = \"http://127.0.0.1:1/x\" }",
            "scaling.pools.llm.actuator",
            "one of command",
        ),
        (
            "[scaling.pools.llm]\nactuator = { webhook = \"http://127.0.0.1:1/x\", register = true }",
            "scaling.pools.llm.actuator.register",
            "only a command's output",
        ),
        (
            "[scaling.pools.llm]\nactuator = { webhook = \"http://127.0.0.1:1/x\", secret_env = \"FLOWGATE_TEST_NOT_SET\" }",
            "scaling.pools.llm.actuator.secret_env",
            "is not set",
        ),
        (
            "[scaling.pools.llm]\nactuator = { command = [\"sh\"], timeout = \"2h\" }",
            "scaling.pools.llm.actuator.timeout",
            "from 1ms to 1h",
        ),
    ];
    for (body, key, says) in cases {
        let body = if body.contains("per_replica") || !body.starts_with("[scaling.pools.llm]") {
            body.to_string()
        } else {
            format!("{body}\n{per}")
        };
        let p = parse_err(&format!("{GOOD}\n{body}\n"));
        assert!(
            p.iter()
                .any(|p| p.key.to_string() == *key && p.to_string().contains(says)),
            "{body}: {p:?}"
        );
    }
}

#[test]
fn automation_rules_are_read_and_bad_ones_name_their_keys() {
    let base = format!(
        "{GOOD}\n[[alerts.rules]]\nname = \"slow\"\nseries = \"spend_usd_per_hour\"\nvalue = 1\n\n\
         [scaling.pools.llm]\nper_replica = {{ requests_per_second = 20 }}\nmin = 2\nmax = 8\nactuator = {{ command = [\"sh\"] }}\n"
    );
    let c = parse_ok(&format!(
        "{base}\n[[automation.rules]]\nname = \"faster\"\nwhen = {{ alert = \"slow\" }}\n\
         do = {{ strategy = \"least_loaded\", pool = \"llm\" }}\ncooldown = \"30m\"\n\
         verify = {{ series = 'spend_usd_per_hour', within = \"5m\", lower_by = 0.1 }}\n\n\
         [[automation.rules]]\nname = \"business-hours\"\n\
         when = {{ schedule = \"0 8 * * 1-5\", for = \"10h\", time_zone = \"Europe/Berlin\" }}\n\
         do = {{ scale = \"llm\", replicas = \"+2\" }}\n"
    ));
    let rules = &c.automation.rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0].when,
        crate::Trigger::Alert {
            rule: "slow".into(),
            resolves: false
        }
    );
    assert_eq!(rules[0].cooldown, Duration::from_secs(1800));
    assert_eq!(rules[0].max_per_hour, 6);
    assert_eq!(
        rules[0].verify,
        Some(crate::Verify {
            series: "spend_usd_per_hour".into(),
            within: Duration::from_secs(300),
            better: crate::Better::Lower,
            by: 0.1
        })
    );
    assert!(matches!(
        &rules[1].when,
        crate::Trigger::Schedule { schedule, open, .. } if schedule.expr == "0 8 * * 1-5" && *open == Duration::from_secs(36_000)
    ));
    assert_eq!(
        rules[1].action,
        crate::AutomationAction::Scale {
            pool: "llm".into(),
            replicas: crate::Replicas::By(2)
        }
    );
    let cases: &[(&str, &str, &str)] = &[
        (
            "when = { alert = \"tea\" }\ndo = { strategy = \"random\", pool = \"llm\" }",
            "automation.rules[0].when.alert",
            "no alert rule \"tea\"",
        ),
        (
            "when = { schedule = \"0 25 * * *\" }\ndo = { strategy = \"random\", pool = \"llm\" }",
            "automation.rules[0].when.schedule",
            "hour: \"25\" is not from 0 to 23",
        ),
        (
            "when = { schedule = \"0 8 * * *\", time_zone = \"Mars/Olympus\" }\ndo = { strategy = \"random\", pool = \"llm\" }",
            "automation.rules[0].when.time_zone",
            "not a time zone",
        ),
        (
            "when = { alert = \"slow\", anomaly = \"x*\" }\ndo = { strategy = \"random\", pool = \"llm\" }",
            "automation.rules[0].when",
            "one of alert",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { scale = \"llm\", replicas = 20 }",
            "automation.rules[0].do.replicas",
            "beyond the pool's scaling bounds, 2 to 8",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { scale = \"tea\", replicas = 3 }",
            "automation.rules[0].do.scale",
            "no [scaling.pools.tea] with an actuator",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { strategy = \"fastest\", pool = \"llm\" }",
            "automation.rules[0].do.strategy",
            "fastest",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { strategy = \"random\", scale = \"llm\" }",
            "automation.rules[0].do",
            "one of strategy",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { strategy = \"random\", pool = \"llm\" }\nverify = { series = \"spend_usd_per_hour\" }",
            "automation.rules[0].verify",
            "one of lower_by or higher_by",
        ),
        (
            "do = { strategy = \"random\", pool = \"llm\" }",
            "automation.rules[0].when",
            "missing",
        ),
        (
            "when = { alert = \"slow\" }\ndo = { launch = \"rockets\" }",
            "automation.rules[0].do.launch",
            "unknown field",
        ),
    ];
    for (body, key, says) in cases {
        let p = parse_err(&format!("{base}\n[[automation.rules]]\n{body}\n"));
        assert!(
            p.iter()
                .any(|p| p.key.to_string() == *key && p.to_string().contains(says)),
            "{body}: {p:?}"
        );
    }
}
