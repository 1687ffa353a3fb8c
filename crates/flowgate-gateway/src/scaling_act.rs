//! Scaling actuators: what carries a pool's decision out (`[scaling.pools.NAME]
//! actuator`): a command run with the count (its output's URLs, with `register`, become
//! the pool's registered endpoints), or a signed JSON webhook.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use flowgate_config::{Actuator, PoolScaling};
use flowgate_insight::scaling::Decision;
use http::{HeaderName, HeaderValue, Method};
use serde_json::json;

use crate::gateway::Gateway;
use crate::scaling::Acted;

/// The most output kept from a command (its end).
const KEPT: usize = 2000;

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    match s.char_indices().rev().nth(KEPT) {
        Some((i, _)) => format!("…{}", &s[i..]),
        None => s.to_string(),
    }
}

/// Carries `d` out for pool `p` with `actuator`.
pub(crate) async fn act(
    gw: &Arc<Gateway>,
    p: &PoolScaling,
    actuator: &Actuator,
    d: &Decision,
) -> Acted {
    let started = gw.clock().now();
    let mut acted = match actuator {
        Actuator::Command {
            program,
            args,
            timeout,
            register,
        } => command(gw, p, program, args, *timeout, *register, d).await,
        Actuator::Webhook {
            url,
            secret,
            timeout,
        } => webhook(gw, p, url, secret.as_ref(), *timeout, d).await,
    };
    acted.took_ms = gw
        .clock()
        .now()
        .saturating_duration_since(started)
        .as_millis() as u64;
    acted
}

fn failed(by: &'static str, detail: String) -> Acted {
    Acted::new(by, false, detail)
}

async fn command(
    gw: &Arc<Gateway>,
    p: &PoolScaling,
    program: &str,
    args: &[String],
    timeout: Duration,
    register: bool,
    d: &Decision,
) -> Acted {
    let (replicas, current) = (d.desired.to_string(), d.input.current.to_string());
    let fill = |a: &String| {
        a.replace("{replicas}", &replicas)
            .replace("{current}", &current)
            .replace("{pool}", &p.pool)
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args.iter().map(fill))
        .env("FLOWGATE_POOL", &p.pool)
        .env("FLOWGATE_REPLICAS", &replicas)
        .env("FLOWGATE_CURRENT", &current)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => {
            return failed(
                "command",
                format!(
                    "{program} was killed after {}",
                    flowgate_clock::format_duration(timeout)
                ),
            );
        }
        Ok(Err(e)) => return failed("command", format!("cannot run {program}: {e}")),
        Ok(Ok(out)) => out,
    };
    let mut detail = tail(&out.stdout);
    let err = tail(&out.stderr);
    if !err.is_empty() {
        detail = format!("{detail}\n{err}").trim().to_string();
    }
    if !out.status.success() {
        return failed(
            "command",
            format!("{program} failed ({}): {detail}", out.status),
        );
    }
    let mut acted = Acted::new("command", true, detail);
    if register {
        let urls: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
            .collect();
        if let Err(why) = register_endpoints(gw, &p.pool, &urls, &mut acted) {
            acted.ok = false;
            acted.detail = format!("the endpoints it listed could not be registered: {why}");
        }
    }
    acted
}

/// Makes `urls` the pool's registered endpoints: new ones registered, registered ones no
/// longer listed deregistered, in one rebuild of the pool; nothing changes when it fails.
fn register_endpoints(
    gw: &Arc<Gateway>,
    pool: &str,
    urls: &[&str],
    acted: &mut Acted,
) -> Result<(), String> {
    let rt = gw.runtime();
    let u = rt
        .upstream(pool)
        .ok_or_else(|| format!("no pool {pool:?}"))?;
    let mut wanted = Vec::new();
    for url in urls {
        let spec: flowgate_config::EndpointSpec =
            serde_json::from_value(json!({ "url": url })).map_err(|e| format!("{url}: {e}"))?;
        let ep = flowgate_config::endpoint_from_spec(spec, &[]).map_err(|list| {
            let why: Vec<String> = list.iter().map(|(k, m)| format!("{k}: {m}")).collect();
            format!("{url}: {}", why.join("; "))
        })?;
        wanted.push(ep);
    }
    let instances = gw.instances();
    for ep in &wanted {
        if u.endpoint(&ep.name).is_none() {
            let name = ep.name.clone();
            if instances.add(&u.cfg, ep.clone()).is_ok() {
                acted.registered.push(name);
            }
        }
    }
    for ep in u.endpoints() {
        let name = &ep.name;
        if instances.is_registered(pool, name)
            && !wanted.iter().any(|w| *w.name == **name)
            && let Ok(cfg) = instances.remove(pool, name)
        {
            acted.deregistered.push(cfg.name);
        }
    }
    if acted.registered.is_empty() && acted.deregistered.is_empty() {
        return Ok(());
    }
    if let Err(why) = gw.rebuild() {
        for name in acted.registered.drain(..) {
            let _ = instances.remove(pool, &name);
        }
        acted.deregistered.clear();
        return Err(why);
    }
    tracing::info!(pool, registered = ?acted.registered, deregistered = ?acted.deregistered, "scaling changed the pool's endpoints");
    Ok(())
}

async fn webhook(
    gw: &Arc<Gateway>,
    p: &PoolScaling,
    url: &http::Uri,
    secret: Option<&flowgate_config::Secret>,
    timeout: Duration,
    d: &Decision,
) -> Acted {
    let body = json!({
        "pool": p.pool,
        "current": d.input.current,
        "desired": d.desired,
        "direction": d.direction,
        "reason": d.reason,
        "at": d.at,
        "utilization": if d.input.utilization.is_finite() { Some(d.input.utilization) } else { None },
    });
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut headers = vec![(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    if let Some(s) = secret {
        let ts = gw.clock().unix_millis() / 1000;
        let sig = flowgate_insight::notify::message::signature(s.expose().as_bytes(), ts, &body);
        if let (Ok(t), Ok(v)) = (
            HeaderValue::try_from(ts.to_string()),
            HeaderValue::try_from(sig),
        ) {
            headers.push((HeaderName::from_static("x-flowgate-timestamp"), t));
            headers.push((HeaderName::from_static("x-flowgate-signature"), v));
        }
    }
    let req = flowgate_http::fetch::Request {
        method: Method::POST,
        url,
        headers: &headers,
        body,
        timeout,
    };
    match gw.fetcher().send(&req).await {
        Ok(f) if f.status.is_success() => {
            Acted::new("webhook", true, format!("{}: {}", f.status, tail(&f.body)))
        }
        Ok(f) => failed(
            "webhook",
            format!("{url} answered {}: {}", f.status, tail(&f.body)),
        ),
        Err(e) => failed("webhook", format!("{url}: {e}")),
    }
}
