//! Who may call the admin API (`[admin]`): tokens with a scope, hashed as virtual keys are
//! (`flowgate key create --admin` makes one), and `FLOWGATE_ADMIN_TOKEN` from the
//! environment (a write token, for scripts and containers). Which endpoints stay open
//! without a token, and which `Host` values the admin API answers (no DNS rebinding).

use serde::Deserialize;

use crate::error::Found;
use crate::error::KeyPath;
use crate::secret::{Secret, parse_key_hash};

/// The environment variable holding a write token.
pub const ADMIN_TOKEN_ENV: &str = "FLOWGATE_ADMIN_TOKEN";

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
    pub open: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
}

/// `[[admin.tokens]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminToken {
    pub name: String,
    pub hash: String,
    pub scope: Option<String>,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminScope {
    /// `GET` and `HEAD` of `/metrics`, `/health` and `/ready`: a scraper's token.
    Metrics,
    /// `GET` and `HEAD`.
    Read,
    /// Everything.
    Write,
}

impl AdminScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::Metrics => "metrics",
            AdminScope::Read => "read",
            AdminScope::Write => "write",
        }
    }
}

/// An admin token: only its hash is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub name: String,
    pub hash: [u8; 32],
    pub scope: AdminScope,
}

/// The admin API's access rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub tokens: Vec<AdminToken>,
    /// `FLOWGATE_ADMIN_TOKEN`, when set: a write token.
    pub env_token: Option<Secret>,
    /// Endpoints answered without a token: `health`, `ready` (default) and `metrics`.
    pub open_health: bool,
    pub open_ready: bool,
    pub open_metrics: bool,
    /// `Host` values (without port) answered besides the loopback names and the admin
    /// listener's own address.
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            tokens: Vec::new(),
            env_token: None,
            open_health: true,
            open_ready: true,
            open_metrics: false,
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// Whether calls need a token: some token exists. Without one the admin API is open
    /// (to whoever reaches its address: loopback by default).
    pub fn requires_token(&self) -> bool {
        !self.tokens.is_empty() || self.env_token.is_some()
    }
}

pub(crate) fn admin(
    raw: Option<&RawAdmin>,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> AdminConfig {
    let mut out = AdminConfig {
        env_token: env
            .iter()
            .find(|(k, v)| k == ADMIN_TOKEN_ENV && !v.is_empty())
            .map(|(k, v)| Secret::new(k.clone(), v.clone())),
        ..AdminConfig::default()
    };
    let Some(raw) = raw else {
        return out;
    };
    for (i, t) in raw.tokens.iter().enumerate() {
        let tk = key.clone().key("tokens").index(i);
        if t.name.is_empty() || !t.name.bytes().all(|c| c.is_ascii_graphic()) {
            found.push((
                tk.clone().key("name"),
                format!("{:?}: expected visible ASCII", t.name),
            ));
        }
        if out.tokens.iter().any(|o| o.name == t.name) {
            found.push((
                tk.clone().key("name"),
                format!("duplicate token name {:?}", t.name),
            ));
        }
        let Some(hash) = parse_key_hash(&t.hash) else {
            found.push((
                tk.clone().key("hash"),
                format!(
                    "{:?} is not a token hash: expected \"blake3:\" and 64 hex digits \
                     (`flowgate key create --admin` makes a token and its hash)",
                    t.hash
                ),
            ));
            continue;
        };
        let scope = match t.scope.as_deref() {
            None | Some("read") => AdminScope::Read,
            Some("write") => AdminScope::Write,
            Some("metrics") => AdminScope::Metrics,
            Some(other) => {
                found.push((
                    tk.clone().key("scope"),
                    format!("{other:?}: expected \"metrics\", \"read\" or \"write\""),
                ));
                AdminScope::Read
            }
        };
        out.tokens.push(AdminToken {
            name: t.name.clone(),
            hash,
            scope,
        });
    }
    if let Some(open) = &raw.open {
        out.open_health = false;
        out.open_ready = false;
        for (i, o) in open.iter().enumerate() {
            match o.as_str() {
                "health" => out.open_health = true,
                "ready" => out.open_ready = true,
                "metrics" => out.open_metrics = true,
                other => found.push((
                    key.clone().key("open").index(i),
                    format!("{other:?}: expected \"health\", \"ready\" or \"metrics\""),
                )),
            }
        }
    }
    for (i, h) in raw.allowed_hosts.iter().flatten().enumerate() {
        let ok = !h.is_empty()
            && h.bytes().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b':' | b'[' | b']')
            });
        if ok {
            out.allowed_hosts.push(h.to_ascii_lowercase());
        } else {
            found.push((
                key.clone().key("allowed_hosts").index(i),
                format!("{h:?} is not a host name"),
            ));
        }
    }
    out
}
