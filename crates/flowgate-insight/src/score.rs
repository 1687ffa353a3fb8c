//! The health score: 0–100 from components, each scored 0–100 against a target, weighed,
//! and explained (its value, its target, why it scored so). Components without data (no
//! cache, no budget) drop out and the others' weights are scaled up. The inputs come from
//! what the gateway already measures; nothing here reads a clock or a socket.

use serde::Serialize;

/// What the score is made from. `None`: not measured (the component drops out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    /// Requests and their 5xx share over the last 5 minutes.
    pub requests: u64,
    pub error_ratio: Option<f64>,
    /// The 95th percentile over the last 5 minutes, and the target (ms).
    pub latency_p95_ms: Option<f64>,
    pub latency_target_ms: f64,
    /// The usable share of the worst pool's endpoints, and its name.
    pub upstreams: Option<(String, f64)>,
    /// Named shares of a resource in use (memory of its limit, CPU of the host).
    pub saturation: Vec<(String, f64)>,
    /// The cache's hit ratio lately.
    pub cache_hit_ratio: Option<f64>,
    /// The budget nearest its limit: its name and the share spent.
    pub budget: Option<(String, f64)>,
    /// Alerts firing: critical, warning, info.
    pub alerts_firing: [usize; 3],
    /// Anomalies open, the highest score first: their series and summaries; `None`: no
    /// detection.
    pub anomalies_open: Option<Vec<(String, String)>>,
}

/// One component of the score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Component {
    pub name: &'static str,
    /// 0–100.
    pub score: f64,
    /// Its share of the total (the weights of the components present sum to 1).
    pub weight: f64,
    pub value: String,
    pub why: String,
}

/// The score and its parts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Score {
    /// 0–100.
    pub score: u8,
    /// `healthy` (80 and over), `degraded` (50 to 79) or `unhealthy`.
    pub status: &'static str,
    pub components: Vec<Component>,
}

/// 100 at or better than `good`, 0 at or worse than `bad`, linear between (either order).
fn between(x: f64, good: f64, bad: f64) -> f64 {
    let t = ((x - good) / (bad - good)).clamp(0.0, 1.0);
    if t.is_finite() {
        100.0 * (1.0 - t)
    } else {
        0.0
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The score of `i` (see the module's documentation).
pub fn score(i: &Inputs) -> Score {
    let mut parts: Vec<(Component, f64)> = Vec::new();
    let mut add = |name, weight, score: f64, value: String, why: String| {
        parts.push((
            Component {
                name,
                score: score.clamp(0.0, 100.0).round(),
                weight: 0.0,
                value,
                why,
            },
            weight,
        ));
    };
    match i.error_ratio.filter(|_| i.requests > 0) {
        Some(e) => add(
            "availability",
            25.0,
            between(e, 0.0, 0.05),
            pct(e),
            format!(
                "{} of {} answers in 5 min failed; 0% scores 100, 5% or more 0",
                pct(e),
                i.requests
            ),
        ),
        None => add(
            "availability",
            25.0,
            100.0,
            "no traffic".into(),
            "no request in the last 5 min".into(),
        ),
    }
    if let Some(p95) = i.latency_p95_ms {
        let t = i.latency_target_ms;
        add(
            "latency",
            20.0,
            between(p95, t, 2.0 * t),
            format!("{p95:.0} ms"),
            format!("p95 over 5 min against {t:.0} ms: at or under it scores 100, twice it 0"),
        );
    }
    if let Some((pool, r)) = &i.upstreams {
        add(
            "upstreams",
            10.0,
            100.0 * r.clamp(0.0, 1.0),
            pct(*r),
            format!(
                "{} of pool {pool}'s endpoints are usable (the worst pool)",
                pct(*r)
            ),
        );
    }
    if let Some((name, s)) = i
        .saturation
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(_, s)| s.is_finite())
    {
        add(
            "saturation",
            15.0,
            between(*s, 0.7, 1.0),
            pct(*s),
            format!(
                "{name} at {} (the busiest resource): 70% or less scores 100, 100% 0",
                pct(*s)
            ),
        );
    }
    if let Some(h) = i.cache_hit_ratio {
        add(
            "cache",
            10.0,
            between(h, 0.7, 0.0),
            pct(h),
            format!("hit ratio {}: 70% or more scores 100", pct(h)),
        );
    }
    if let Some((name, u)) = &i.budget {
        add(
            "spend",
            10.0,
            between(*u, 0.8, 1.0),
            pct(*u),
            format!(
                "budget {name} at {} of its limit: 80% or less scores 100, 100% 0",
                pct(*u)
            ),
        );
    }
    let [critical, warning, info] = i.alerts_firing;
    let (s, why) = if critical > 0 {
        (0.0, format!("{critical} critical alert(s) firing"))
    } else if warning > 0 {
        (50.0, format!("{warning} warning(s) firing"))
    } else if info > 0 {
        (90.0, format!("{info} info alert(s) firing"))
    } else {
        (100.0, "no alert firing".to_string())
    };
    add(
        "alerts",
        10.0,
        s,
        format!("{} firing", critical + warning + info),
        why,
    );
    if let Some(open) = &i.anomalies_open {
        let n = open.len();
        add(
            "anomalies",
            10.0,
            between(n as f64, 0.0, 4.0),
            format!("{n} open"),
            match open.split_first() {
                None => "no anomaly open on the watched series".to_string(),
                Some(((_, worst), rest)) => {
                    let others: Vec<&str> = rest.iter().map(|(s, _)| s.as_str()).collect();
                    format!(
                        "{n} anomaly(ies) open (none scores 100, four or more 0); the worst: {worst}{}",
                        if others.is_empty() {
                            String::new()
                        } else {
                            format!("; also on {}", others.join(", "))
                        }
                    )
                }
            },
        );
    }
    let total: f64 = parts.iter().map(|(_, w)| w).sum();
    let mut components: Vec<Component> = parts
        .into_iter()
        .map(|(mut c, w)| {
            c.weight = (w / total * 1000.0).round() / 1000.0;
            c
        })
        .collect();
    let s: f64 = components.iter().map(|c| c.score * c.weight).sum();
    let s = s.clamp(0.0, 100.0).round();
    components.sort_by(|a, b| a.score.total_cmp(&b.score));
    Score {
        score: s as u8,
        status: if s >= 80.0 {
            "healthy"
        } else if s >= 50.0 {
            "degraded"
        } else {
            "unhealthy"
        },
        components,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Inputs {
        Inputs {
            requests: 1000,
            error_ratio: Some(0.0),
            latency_p95_ms: Some(800.0),
            latency_target_ms: 3000.0,
            upstreams: Some(("llm".into(), 1.0)),
            saturation: vec![("memory".into(), 0.3), ("cpu".into(), 0.5)],
            cache_hit_ratio: Some(0.75),
            budget: Some(("hourly".into(), 0.4)),
            alerts_firing: [0, 0, 0],
            anomalies_open: Some(Vec::new()),
        }
    }

    fn part<'a>(s: &'a Score, name: &str) -> &'a Component {
        s.components.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn all_well_is_a_hundred_and_weights_sum_to_one() {
        let s = score(&healthy());
        assert_eq!((s.score, s.status), (100, "healthy"));
        assert_eq!(s.components.len(), 8);
        let w: f64 = s.components.iter().map(|c| c.weight).sum();
        assert!((w - 1.0).abs() < 0.01, "{w}");
    }

    #[test]
    fn each_component_maps_its_value_to_its_target() {
        let mut i = healthy();
        i.error_ratio = Some(0.025);
        i.latency_p95_ms = Some(4500.0);
        i.upstreams = Some(("llm".into(), 0.5));
        i.saturation.push(("memory of its limit".into(), 0.85));
        i.cache_hit_ratio = Some(0.35);
        i.budget = Some(("hourly".into(), 0.9));
        i.alerts_firing = [0, 1, 0];
        i.anomalies_open = Some(vec![
            ("a".into(), "a went up".into()),
            ("b".into(), "b went down".into()),
        ]);
        let s = score(&i);
        assert_eq!(part(&s, "anomalies").score, 50.0);
        assert!(
            part(&s, "anomalies")
                .why
                .ends_with("the worst: a went up; also on b")
        );
        assert_eq!(part(&s, "availability").score, 50.0);
        assert_eq!(part(&s, "latency").score, 50.0);
        assert_eq!(part(&s, "upstreams").score, 50.0);
        assert_eq!(part(&s, "saturation").score, 50.0);
        assert!(
            part(&s, "saturation")
                .why
                .starts_with("memory of its limit at 85.0%")
        );
        assert_eq!(part(&s, "cache").score, 50.0);
        assert_eq!(part(&s, "spend").score, 50.0);
        assert_eq!(part(&s, "alerts").score, 50.0);
        assert_eq!((s.score, s.status), (50, "degraded"));
        i.alerts_firing = [1, 0, 0];
        i.error_ratio = Some(0.2);
        let s = score(&i);
        assert_eq!(part(&s, "availability").score, 0.0);
        assert_eq!(s.status, "unhealthy");
        assert_eq!(s.components[0].score, 0.0, "worst first");
    }

    #[test]
    fn what_is_not_measured_drops_out() {
        let i = Inputs {
            latency_target_ms: 3000.0,
            ..Inputs::default()
        };
        let s = score(&i);
        let names: Vec<&str> = s.components.iter().map(|c| c.name).collect();
        assert_eq!(names, ["availability", "alerts"]);
        assert_eq!(part(&s, "availability").value, "no traffic");
        assert_eq!(s.score, 100);
        assert!((part(&s, "availability").weight - 0.714).abs() < 0.001);
        let mut i = healthy();
        i.error_ratio = Some(f64::NAN);
        i.saturation = vec![("cpu".into(), f64::INFINITY)];
        let s = score(&i);
        assert!(s.components.iter().all(|c| c.score.is_finite()));
    }
}
