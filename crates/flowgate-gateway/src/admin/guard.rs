//! The admin API's door, in front of every handler:
//!
//! 1. **Host**: only `localhost`, an IP address, or one of `[admin] allowed_hosts` (a page
//!    on another site cannot reach the API by pointing its own name at this address: DNS
//!    rebinding). A request without `Host` is refused.
//! 2. **Token**, when the API has one (`[[admin.tokens]]` or `FLOWGATE_ADMIN_TOKEN`):
//!    `Authorization: Bearer TOKEN`; `401` without one or with an unknown one, `403` when a
//!    `read` token asks for more than `GET`/`HEAD`, or a `metrics` token (a scraper's) for
//!    more than reading `/metrics`, `/health` and `/ready`. The dashboard's page and
//!    assets (`/dashboard...`) hold no data and are served without one. `/health` and `/ready` stay open (and
//!    `/metrics` when `[admin] open` says so). After [`FAILURES`] wrong tokens within
//!    [`WINDOW`] from one address, that address gets `429` until the window ends.
//! 3. **Content type**: a `POST`, `PUT` or `PATCH` must say `application/json` (`415`), so
//!    that no HTML form on another site can send one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use flowgate_config::AdminScope;

use super::reply::client_error;
use crate::gateway::Gateway;

/// Wrong tokens from one address before it is turned away...
pub const FAILURES: u32 = 5;
/// ...for the rest of this window (from its first failure).
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (older entries are dropped past it).
const REMEMBERED: usize = 10_000;

/// The door's state: the gateway (its config and tokens) and the recent failures.
#[derive(Debug)]
pub struct Door {
    gw: Arc<Gateway>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Door {
    pub fn new(gw: Arc<Gateway>) -> Arc<Self> {
        Arc::new(Door {
            gw,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// How long `ip` is still turned away, if it is.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.lock().ok()?;
        let (count, since) = f.get(&ip)?;
        let left = WINDOW.checked_sub(now.saturating_duration_since(*since))?;
        (*count >= FAILURES && !left.is_zero()).then_some(left)
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut f) = self.failures.lock() else {
            return;
        };
        if f.len() >= REMEMBERED {
            f.retain(|_, (_, since)| now.saturating_duration_since(*since) < WINDOW);
        }
        let e = f.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(e.1) >= WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&ip);
        }
    }
}

/// The middleware.
pub async fn guard(
    State(door): State<Arc<Door>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let rt = door.gw.runtime();
    let admin = &rt.config.admin;
    match req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        None => {
            return client_error(
                StatusCode::BAD_REQUEST,
                "a Host field is required",
                "host_required",
            );
        }
        Some(host) if !host_allowed(host, &admin.allowed_hosts) => {
            return client_error(
                StatusCode::FORBIDDEN,
                &format!(
                    "the admin API does not answer for host {host:?}: call it by an IP address \
                     or localhost, or list the name in [admin] allowed_hosts"
                ),
                "host_not_allowed",
            );
        }
        Some(_) => {}
    }
    let open = match req.uri().path() {
        "/health" => admin.open_health,
        "/ready" => admin.open_ready,
        "/metrics" => admin.open_metrics,
        // The dashboard's assets hold no data; the page asks for the token.
        p => super::dashboard::PATHS.contains(&p),
    };
    if admin.requires_token() && !open {
        let now = door.gw.clock().now();
        if let Some(left) = door.locked(peer.ip(), now) {
            let mut r = client_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many wrong admin tokens from {}: try again in {} s",
                    peer.ip(),
                    left.as_secs().max(1)
                ),
                "too_many_failures",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(left.as_secs().max(1)),
            );
            return r;
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return unauthorized("the admin API needs a token: Authorization: Bearer TOKEN");
        };
        let Some((name, scope)) = rt.admin_tokens.find(presented.as_bytes()).cloned() else {
            door.failed(peer.ip(), now);
            tracing::warn!(peer = %peer.ip(), "admin call with an unknown token");
            return unauthorized("unknown admin token");
        };
        door.succeeded(peer.ip());
        if let Some(why) = beyond(scope, req.method(), req.uri().path()) {
            return client_error(
                StatusCode::FORBIDDEN,
                &format!("admin token {name:?} {why}"),
                "insufficient_scope",
            );
        }
    }
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) && !is_json(&req) {
        return client_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "admin requests with a body must be Content-Type: application/json",
            "unsupported_media_type",
        );
    }
    drop(rt);
    next.run(req).await
}

/// Why a token of `scope` may not make this call, if it may not.
fn beyond(scope: AdminScope, method: &Method, path: &str) -> Option<String> {
    let reads = matches!(*method, Method::GET | Method::HEAD);
    match scope {
        AdminScope::Write => None,
        AdminScope::Read if reads => None,
        AdminScope::Read => Some(format!("is read-only: {method} needs a write token")),
        AdminScope::Metrics if reads && SCRAPED.contains(&path) => None,
        AdminScope::Metrics => Some(format!(
            "may only read /metrics, /health and /ready: {method} {path} needs a read token"
        )),
    }
}

/// What a `metrics` token may read.
const SCRAPED: [&str; 3] = ["/metrics", "/health", "/ready"];

fn unauthorized(message: &str) -> Response {
    let mut r = client_error(StatusCode::UNAUTHORIZED, message, "invalid_admin_token");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"flowgate-admin\""),
    );
    r
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether the admin API answers for `host` (a `Host` value, port included or not).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .map_or(host.clone(), |(h, _)| h.to_string())
    };
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || bare.parse::<IpAddr>().is_ok()
        || allowed.iter().any(|a| *a == name || *a == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_by_address_or_localhost_or_listed() {
        let listed = vec!["admin.corp".to_string()];
        for ok in [
            "127.0.0.1:9090",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9090",
            "10.0.0.5",
            "admin.corp:9090",
        ] {
            assert!(host_allowed(ok, &listed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "admin.corp.evil",
        ] {
            assert!(!host_allowed(bad, &listed), "{bad}");
        }
    }
}
