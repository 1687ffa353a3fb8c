//! Egress proxies: a pool's `proxy = "http://[user:password@]host:port"` (or `"none"`), and
//! otherwise the `HTTPS_PROXY` / `NO_PROXY` variables of the environment the config is
//! loaded in, for `https://` endpoints, as curl and most HTTP clients read them.

use std::net::IpAddr;

use http::Uri;

use crate::error::Found;
use crate::error::KeyPath;
use crate::ip_block::IpBlock;

/// An HTTP proxy connections are tunnelled through (`CONNECT`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `host:port` (port 80 when the URL has none).
    pub authority: String,
    /// Basic credentials, from the URL's user information.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Where it was set: `proxy` of the pool, or the variable's name.
    pub source: String,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// Never prints the password.
impl std::fmt::Display for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(u) => write!(f, "http://{u}:***@{} ({})", self.authority, self.source),
            None => write!(f, "http://{} ({})", self.authority, self.source),
        }
    }
}

/// How a pool's connections leave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Egress {
    /// Directly (`proxy = "none"`, or no proxy set anywhere).
    #[default]
    Direct,
    /// Every connection through this proxy (`proxy = "http://..."`).
    Proxy(ProxyConfig),
    /// `https://` endpoints through `HTTPS_PROXY` unless `NO_PROXY` names their host.
    Env {
        https: ProxyConfig,
        no_proxy: Vec<String>,
    },
}

impl Egress {
    /// The proxy the connections to `host` go through, if any (`tls`: an `https://`
    /// endpoint).
    pub fn proxy_for(&self, tls: bool, host: &str) -> Option<&ProxyConfig> {
        match self {
            Egress::Direct => None,
            Egress::Proxy(p) => Some(p),
            Egress::Env { https, no_proxy } => (tls && !bypassed(no_proxy, host)).then_some(https),
        }
    }
}

/// Whether `NO_PROXY`'s entries cover `host`: `*`, the host itself, a domain it is under
/// (`example.com` and `.example.com` both cover `api.example.com`), an IP address, or a
/// CIDR block that holds it.
fn bypassed(no_proxy: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    no_proxy.iter().any(|entry| {
        let entry = entry.trim().trim_start_matches('.').to_ascii_lowercase();
        if entry == "*" || entry == host {
            return true;
        }
        if let (Some(ip), Some(block)) = (
            ip,
            entry
                .contains('/')
                .then(|| IpBlock::parse(&entry))
                .flatten(),
        ) {
            return block.contains(ip);
        }
        !entry.is_empty() && host.ends_with(&format!(".{entry}"))
    })
}

/// A pool's egress: its `proxy` key, else the environment's.
pub(crate) fn egress(
    raw: Option<&str>,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> Egress {
    let key = key.clone().key("proxy");
    match raw {
        Some("none") => Egress::Direct,
        Some(url) => proxy_url(url, "proxy", &key, found).map_or(Egress::Direct, Egress::Proxy),
        None => {
            let var = |names: [&str; 2]| {
                names.iter().find_map(|n| {
                    env.iter()
                        .find(|(k, v)| k == n && !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                })
            };
            let Some((name, url)) = var(["HTTPS_PROXY", "https_proxy"]) else {
                return Egress::Direct;
            };
            let no_proxy = var(["NO_PROXY", "no_proxy"])
                .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            // A bad variable is reported at the pool's `proxy` key, naming the variable.
            match proxy_url(&url, &name, &key, found) {
                Some(https) => Egress::Env { https, no_proxy },
                None => Egress::Direct,
            }
        }
    }
}

fn proxy_url(url: &str, source: &str, key: &KeyPath, found: &mut Found) -> Option<ProxyConfig> {
    let shown = match url.split_once('@') {
        Some((_, host)) => format!("http://***@{host}"),
        None => url.to_string(),
    };
    let bad = |why: &str, found: &mut Found| {
        found.push((
            key.clone(),
            format!("{source}: {shown:?} {why}; expected \"http://[user:password@]host:port\""),
        ));
        None
    };
    let uri: Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => return bad("is not a URL", found),
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return bad(
                "is not an http:// proxy (TLS to the proxy is not supported)",
                found,
            );
        }
        None => return bad("has no scheme", found),
    }
    let Some(auth) = uri.authority() else {
        return bad("has no host", found);
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return bad("has a path", found);
    }
    let host_port = auth.as_str().rsplit('@').next().unwrap_or_default();
    let authority = if auth.port().is_some() {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    let (user, password) = match auth.as_str().rsplit_once('@') {
        Some((info, _)) => match info.split_once(':') {
            Some((u, p)) => (Some(unescape(u)), Some(unescape(p))),
            None => (Some(unescape(info)), Some(String::new())),
        },
        None => (None, None),
    };
    Some(ProxyConfig {
        authority,
        user,
        password,
        source: source.to_string(),
    })
}

/// A URL's user information with its `%XX` escapes decoded (a password with `@` or `:`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_proxy_covers_hosts_domains_addresses_and_blocks() {
        let list: Vec<String> = [
            "localhost",
            ".internal.example",
            "corp.example",
            "10.0.0.0/8",
            "::1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for host in [
            "localhost",
            "a.internal.example",
            "corp.example",
            "api.corp.example",
            "10.1.2.3",
            "::1",
        ] {
            assert!(bypassed(&list, host), "{host}");
        }
        for host in [
            "api.openai.com",
            "notcorp.example",
            "11.0.0.1",
            "internal.example.org",
        ] {
            assert!(!bypassed(&list, host), "{host}");
        }
        assert!(bypassed(&["*".into()], "anything"));
    }

    #[test]
    fn a_pool_proxy_wins_and_the_environment_applies_to_https_only() {
        let mut found = Vec::new();
        let k = KeyPath::default();
        let e = egress(Some("http://u:p%40ss@proxy:3128"), &[], &k, &mut found);
        let Egress::Proxy(p) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(p.authority, "proxy:3128");
        assert_eq!(
            (p.user.as_deref(), p.password.as_deref()),
            (Some("u"), Some("p@ss"))
        );
        assert!(!p.to_string().contains("ss"), "never shown: {p}");
        let vars = env(&[
            ("HTTPS_PROXY", "http://egress:8080"),
            ("NO_PROXY", "localhost,.corp"),
        ]);
        assert_eq!(egress(Some("none"), &vars, &k, &mut found), Egress::Direct);
        let e = egress(None, &vars, &k, &mut found);
        let Egress::Env { https, no_proxy } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(https.authority, "egress:8080");
        assert_eq!(https.source, "HTTPS_PROXY");
        assert_eq!(no_proxy, &["localhost", ".corp"]);
        assert!(found.is_empty(), "{found:?}");
        for bad in ["https://p:1", "p:1", "http://p:1/path", "::"] {
            egress(Some(bad), &[], &k, &mut found);
        }
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found.iter().all(|(_, m)| m.contains("expected \"http://")),
            "{found:?}"
        );
        let mut found = Vec::new();
        egress(
            None,
            &env(&[("https_proxy", "socks5://x:1")]),
            &k,
            &mut found,
        );
        assert!(found[0].1.starts_with("https_proxy:"), "{found:?}");
    }
}
