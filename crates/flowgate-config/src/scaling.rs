//! Scaling recommendations (`[scaling]`): for each upstream pool named under
//! `[scaling.pools.NAME]`, and for flowgate itself (`[scaling.gateway]`, decided as the
//! target named `flowgate`), how many replicas it should have (`flowgate_insight::scaling`
//! decides; docs/autoscaling.md). Decisions are made and shown, and acted on by what
//! reads them (KEDA's `metrics-api` scaler, an HPA through the Prometheus adapter).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Found, KeyPath};
use crate::units::HumanDuration;

/// `[scaling]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScaling {
    pub enabled: Option<bool>,
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPolicy>,
    pub gateway: Option<RawPolicy>,
}

/// The name flowgate itself is decided under (in the API, the metrics, the actuator's
/// `{pool}`).
pub const GATEWAY_TARGET: &str = "flowgate";

/// One target's policy as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub up_at: Option<f64>,
    pub down_at: Option<f64>,
    pub target: Option<f64>,
    pub up_stabilization: Option<HumanDuration>,
    pub down_stabilization: Option<HumanDuration>,
    pub up_cooldown: Option<HumanDuration>,
    pub down_cooldown: Option<HumanDuration>,
    pub max_step_up: Option<u32>,
    pub max_step_down: Option<u32>,
    pub lead: Option<HumanDuration>,
    pub per_replica: Option<RawPerReplica>,
    pub replicas: Option<u32>,
    pub dry_run: Option<bool>,
    pub actuator: Option<RawActuator>,
}

/// An actuator as written: `{ command = [...], timeout, register }` or `{ webhook = URL,
/// secret_env, timeout }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawActuator {
    pub command: Option<Vec<String>>,
    pub webhook: Option<String>,
    pub secret_env: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub register: Option<bool>,
}

/// What carries a pool's decisions out.
#[derive(Debug, Clone, PartialEq)]
pub enum Actuator {
    /// A program run with the decision: `{replicas}`, `{current}` and `{pool}` in its
    /// arguments replaced, and `FLOWGATE_POOL`, `FLOWGATE_REPLICAS`, `FLOWGATE_CURRENT` in
    /// its environment; killed past `timeout`; a non-zero exit is a failure. With
    /// `register`, the `http(s)://` URLs its output lists, one a line, are the pool's
    /// replicas: new ones are registered as endpoints, registered ones it no longer lists
    /// are deregistered (the config file's endpoints are left as they are).
    Command {
        program: String,
        args: Vec<String>,
        timeout: Duration,
        register: bool,
    },
    /// A JSON `POST` of the decision, signed as the alert webhooks are when a secret is
    /// set; any 2xx is success.
    Webhook {
        url: http::Uri,
        secret: Option<crate::secret::Secret>,
        timeout: Duration,
    },
}

/// What one replica serves, as written: one unit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPerReplica {
    pub requests_per_second: Option<f64>,
    pub in_flight: Option<f64>,
    pub cpu_cores: Option<f64>,
}

/// What one replica serves at full utilization, in the unit its demand is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PerReplica {
    /// Requests a second (a pool: `requests_per_second{pool=…}`).
    RequestsPerSecond(f64),
    /// Requests in flight at once (flowgate itself: `requests_in_flight`).
    InFlight(f64),
    /// CPU cores busy (flowgate itself: `process_cpu_cores`).
    CpuCores(f64),
}

impl PerReplica {
    pub fn capacity(self) -> f64 {
        match self {
            PerReplica::RequestsPerSecond(x)
            | PerReplica::InFlight(x)
            | PerReplica::CpuCores(x) => x,
        }
    }

    /// The unit, in words.
    pub fn shown(self) -> &'static str {
        match self {
            PerReplica::RequestsPerSecond(_) => "requests/s",
            PerReplica::InFlight(_) => "requests in flight",
            PerReplica::CpuCores(_) => "CPU cores",
        }
    }

    /// The unit, as written in the config.
    pub fn unit(self) -> &'static str {
        match self {
            PerReplica::RequestsPerSecond(_) => "requests_per_second",
            PerReplica::InFlight(_) => "in_flight",
            PerReplica::CpuCores(_) => "cpu_cores",
        }
    }
}

/// How a target scales (the recommender's rules; see `flowgate_insight::scaling`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    pub min: u32,
    pub max: u32,
    /// Utilization past which it scales up (0.8).
    pub up_at: f64,
    /// Utilization under which it scales down (0.3).
    pub down_at: f64,
    /// The utilization a new size aims at (0.6).
    pub target: f64,
    /// A scale-up takes the lowest size wanted over this window (none by default).
    pub up_stabilization: Duration,
    /// A scale-down takes the highest size wanted over this window (5 minutes).
    pub down_stabilization: Duration,
    /// After a change, no scale-up (1 minute) or scale-down (5 minutes) for this long.
    pub up_cooldown: Duration,
    pub down_cooldown: Duration,
    /// Replicas added (4) or removed (2) at most at once.
    pub max_step_up: u32,
    pub max_step_down: u32,
    /// How long a new replica takes to be ready: the forecast's horizon for predictive
    /// scaling. `None`: reactive only.
    pub lead: Option<Duration>,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            min: 1,
            max: 10,
            up_at: 0.8,
            down_at: 0.3,
            target: 0.6,
            up_stabilization: Duration::ZERO,
            down_stabilization: Duration::from_secs(300),
            up_cooldown: Duration::from_secs(60),
            down_cooldown: Duration::from_secs(300),
            max_step_up: 4,
            max_step_down: 2,
            lead: None,
        }
    }
}

impl ScalingPolicy {
    /// What is wrong with it, if anything: (key, problem).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.min > self.max {
            return Err(("min", format!("{} is above max {}", self.min, self.max)));
        }
        if self.max == 0 {
            return Err(("max", "at least 1".into()));
        }
        for (k, v) in [
            ("up_at", self.up_at),
            ("down_at", self.down_at),
            ("target", self.target),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err((k, format!("{v} is not a utilization above 0 (0.6: 60%)")));
            }
        }
        if !(self.down_at < self.target && self.target < self.up_at) {
            return Err((
                "target",
                format!(
                    "down_at ({}) < target ({}) < up_at ({}) must hold, or a new size would leave the band at once",
                    self.down_at, self.target, self.up_at
                ),
            ));
        }
        if self.max_step_up == 0 {
            return Err(("max_step_up", "at least 1".into()));
        }
        if self.max_step_down == 0 {
            return Err(("max_step_down", "at least 1".into()));
        }
        Ok(())
    }
}

/// A pool's scaling: its policy, what one of its replicas serves, and what carries its
/// decisions out.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolScaling {
    /// The pool's name, or [`GATEWAY_TARGET`] for flowgate itself.
    pub pool: String,
    pub policy: ScalingPolicy,
    /// What one replica serves at full utilization.
    pub per_replica: PerReplica,
    /// Flowgate itself: the replicas running now, as the orchestrator says
    /// (`FLOWGATE__SCALING__GATEWAY__REPLICAS`); `None`: a pool, whose replicas are its
    /// endpoints.
    pub replicas: Option<u32>,
    /// Decisions are made and shown, the actuator is not called (the default).
    pub dry_run: bool,
    pub actuator: Option<Actuator>,
}

/// `[scaling]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    pub enabled: bool,
    /// How often decisions are made (30 s).
    pub interval: Duration,
    pub pools: Vec<PoolScaling>,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        ScalingConfig {
            enabled: true,
            interval: Duration::from_secs(30),
            pools: Vec::new(),
        }
    }
}

impl ScalingConfig {
    /// Its lines of `flowgate check`'s summary.
    pub fn summary(&self) -> String {
        if !self.enabled || self.pools.is_empty() {
            return "  scaling: off\n".into();
        }
        let mut s = String::new();
        for p in &self.pools {
            s.push_str(&format!(
                "  scaling {}: {}–{} replicas of {} {}, up past {}%, down under {}%{}{}\n",
                match p.replicas {
                    Some(n) => format!("flowgate itself ({n} replica(s) now)"),
                    None => format!("pool {}", p.pool),
                },
                p.policy.min,
                p.policy.max,
                p.per_replica.capacity(),
                p.per_replica.shown(),
                p.policy.up_at * 100.0,
                p.policy.down_at * 100.0,
                p.policy.lead.map_or(String::new(), |l| format!(
                    ", ahead by {}",
                    crate::format_duration(l)
                )),
                match (&p.actuator, p.dry_run) {
                    (None, _) => String::new(),
                    (Some(_), true) => ", dry run".to_string(),
                    (Some(Actuator::Command { program, .. }), false) => format!(", runs {program}"),
                    (Some(Actuator::Webhook { url, .. }), false) => format!(", posts to {url}"),
                },
            ));
        }
        s
    }
}

fn policy(raw: &RawPolicy, key: &KeyPath, found: &mut Found) -> ScalingPolicy {
    let d = ScalingPolicy::default();
    let dur = |v: Option<HumanDuration>, d: Duration| v.map_or(d, |h| h.0);
    let p = ScalingPolicy {
        min: raw.min.unwrap_or(d.min),
        max: raw.max.unwrap_or(d.max),
        up_at: raw.up_at.unwrap_or(d.up_at),
        down_at: raw.down_at.unwrap_or(d.down_at),
        target: raw.target.unwrap_or(d.target),
        up_stabilization: dur(raw.up_stabilization, d.up_stabilization),
        down_stabilization: dur(raw.down_stabilization, d.down_stabilization),
        up_cooldown: dur(raw.up_cooldown, d.up_cooldown),
        down_cooldown: dur(raw.down_cooldown, d.down_cooldown),
        max_step_up: raw.max_step_up.unwrap_or(d.max_step_up),
        max_step_down: raw.max_step_down.unwrap_or(d.max_step_down),
        lead: raw.lead.map(|h| h.0),
    };
    if let Err((k, why)) = p.check() {
        found.push((key.clone().key(k), why));
    }
    if p.lead
        .is_some_and(|l| l.is_zero() || l > Duration::from_secs(86_400))
    {
        found.push((
            key.clone().key("lead"),
            "from 1s to 24h: how long a new replica takes to be ready".into(),
        ));
    }
    p
}

/// Whether `program` can be run: a path to an executable file, or a name found in
/// `PATH`.
fn runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return ok(std::path::Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| ok(&d.join(program))))
}

fn actuator(
    raw: &RawActuator,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> Option<Actuator> {
    let timeout = raw.timeout.map_or(Duration::from_secs(60), |h| h.0);
    if timeout.is_zero() || timeout > Duration::from_secs(3600) {
        found.push((key.clone().key("timeout"), "from 1ms to 1h".into()));
    }
    match (&raw.command, &raw.webhook) {
        (Some(_), Some(_)) | (None, None) => {
            found.push((
                key.clone(),
                "one of command = [\"program\", \"arg\", ...] or webhook = \"https://...\"".into(),
            ));
            None
        }
        (Some(cmd), None) => {
            if raw.secret_env.is_some() {
                found.push((
                    key.clone().key("secret_env"),
                    "only a webhook is signed".into(),
                ));
            }
            let Some((program, args)) = cmd.split_first() else {
                found.push((
                    key.clone().key("command"),
                    "empty: the program to run, then its arguments".into(),
                ));
                return None;
            };
            if !runnable(program) {
                found.push((
                    key.clone().key("command"),
                    format!("{program:?} is not an executable file, nor found in PATH"),
                ));
                return None;
            }
            Some(Actuator::Command {
                program: program.clone(),
                args: args.to_vec(),
                timeout,
                register: raw.register.unwrap_or(false),
            })
        }
        (None, Some(url)) => {
            if raw.register.is_some() {
                found.push((
                    key.clone().key("register"),
                    "only a command's output lists endpoints".into(),
                ));
            }
            let url = crate::units::http_url(
                url,
                &format!("{url:?}"),
                key.clone().key("webhook"),
                found,
            )?;
            let secret = raw.secret_env.as_ref().and_then(|var| {
                crate::notifiers::env_value(var, env, key.clone().key("secret_env"), found)
                    .map(|v| crate::secret::Secret::new(var, v))
            });
            Some(Actuator::Webhook {
                url,
                secret,
                timeout,
            })
        }
    }
}

/// A target's scaling: a pool (`replicas` `None`) or flowgate itself.
fn target(
    raw: &RawPolicy,
    name: &str,
    replicas: Option<u32>,
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> PoolScaling {
    let policy = policy(raw, key, found);
    let per = raw.per_replica.as_ref();
    let given: Vec<(&str, f64)> = [
        (
            "requests_per_second",
            per.and_then(|p| p.requests_per_second),
        ),
        ("in_flight", per.and_then(|p| p.in_flight)),
        ("cpu_cores", per.and_then(|p| p.cpu_cores)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let allowed: &[&str] = if replicas.is_some() {
        &["in_flight", "cpu_cores"]
    } else {
        &["requests_per_second"]
    };
    let per_replica = match given.as_slice() {
        [(unit, v)] if allowed.contains(unit) && v.is_finite() && *v > 0.0 => match *unit {
            "in_flight" => PerReplica::InFlight(*v),
            "cpu_cores" => PerReplica::CpuCores(*v),
            _ => PerReplica::RequestsPerSecond(*v),
        },
        [(unit, v)] if allowed.contains(unit) => {
            found.push((
                key.clone().key("per_replica").key(unit),
                format!("{v} is not an amount above 0"),
            ));
            PerReplica::RequestsPerSecond(1.0)
        }
        _ => {
            let what = if replicas.is_some() {
                "one of { in_flight = 200 } (requests at once) or { cpu_cores = 1.5 }: what one flowgate replica serves at full utilization"
            } else {
                "one of { requests_per_second = 20 }: what one replica serves at full utilization"
            };
            let missing = if given.is_empty() { "missing: " } else { "" };
            found.push((key.clone().key("per_replica"), format!("{missing}{what}")));
            PerReplica::RequestsPerSecond(1.0)
        }
    };
    let actuator = raw
        .actuator
        .as_ref()
        .and_then(|a| actuator(a, env, &key.clone().key("actuator"), found));
    PoolScaling {
        pool: name.to_string(),
        policy,
        per_replica,
        replicas,
        dry_run: raw.dry_run.unwrap_or(true),
        actuator,
    }
}

pub(crate) fn scaling(
    raw: Option<&RawScaling>,
    pools: &[&str],
    env: &[(String, String)],
    key: &KeyPath,
    found: &mut Found,
) -> ScalingConfig {
    let d = ScalingConfig::default();
    let Some(raw) = raw else {
        return d;
    };
    let interval = raw.interval.map_or(d.interval, |h| h.0);
    if interval < Duration::from_secs(1) || interval > Duration::from_secs(3600) {
        found.push((
            key.clone().key("interval"),
            "from 1s to 1h: how often decisions are made".into(),
        ));
    }
    let mut out = Vec::new();
    for (name, p) in &raw.pools {
        let key = key.clone().key("pools").key(name);
        if !pools.contains(&name.as_str()) {
            found.push((
                key.clone(),
                format!("no pool {name:?} (pools: {})", pools.join(", ")),
            ));
            continue;
        }
        if raw.gateway.is_some() && name == GATEWAY_TARGET {
            found.push((
                key.clone(),
                format!("{GATEWAY_TARGET:?} is the name [scaling.gateway] is decided under: scale this pool or flowgate"),
            ));
        }
        if p.replicas.is_some() {
            found.push((
                key.clone().key("replicas"),
                "a pool's replicas are its endpoints: only [scaling.gateway] is told its replicas"
                    .into(),
            ));
        }
        out.push(target(p, name, None, env, &key, found));
    }
    if let Some(g) = &raw.gateway {
        let key = key.clone().key("gateway");
        let replicas = g.replicas.unwrap_or(1);
        if replicas == 0 {
            found.push((
                key.clone().key("replicas"),
                "at least 1: this one runs".into(),
            ));
        }
        if g.actuator.as_ref().is_some_and(|a| a.register.is_some()) {
            found.push((
                key.clone().key("actuator").key("register"),
                "flowgate's replicas are not endpoints of a pool".into(),
            ));
        }
        out.push(target(g, GATEWAY_TARGET, Some(replicas), env, &key, found));
    }
    ScalingConfig {
        enabled: raw.enabled.unwrap_or(true),
        interval,
        pools: out,
    }
}
