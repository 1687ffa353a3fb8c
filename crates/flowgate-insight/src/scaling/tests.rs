use super::*;

const STEP: u64 = 15;

/// A target whose replicas each serve one unit of demand, decided every 15 s over
/// `minutes`, its decisions applied once a new replica is ready (`ready` seconds later;
/// removals at once). `demand(t)` in units; `ahead` gives the recommender the demand
/// `lead` from now (a perfect forecast) or not. The highest utilization seen, and every
/// decision that changed the size.
fn run(
    policy: Policy,
    start: u32,
    minutes: u64,
    ready: u64,
    ahead: bool,
    demand: impl Fn(u64) -> f64,
) -> (f64, Vec<Decision>) {
    let lead = policy.lead.map_or(0, |l| l.as_secs());
    let mut s = Scaler::new(policy);
    let mut current = start;
    // (ready at, size) of changes under way.
    let mut pending: Vec<(u64, u32)> = Vec::new();
    let mut peak: f64 = 0.0;
    let mut changes = Vec::new();
    for t in (0..minutes * 60).step_by(STEP as usize) {
        pending.retain(|(at, size)| {
            if *at <= t {
                current = *size;
                false
            } else {
                true
            }
        });
        let utilization = demand(t) / f64::from(current);
        peak = peak.max(utilization);
        let predicted = ahead.then(|| demand(t + lead) / f64::from(current));
        let d = s.decide(
            t,
            Input {
                current,
                utilization,
                predicted,
            },
        );
        match d.direction {
            Direction::Up => pending.push((t + ready, d.desired)),
            Direction::Down => current = d.desired,
            Direction::Hold => {}
        }
        if d.direction != Direction::Hold {
            changes.push(d);
        }
    }
    (peak, changes)
}

#[test]
fn a_ramp_is_met_before_saturation_and_sooner_with_a_forecast() {
    // From 2 to 30 units over an hour; a replica takes 3 minutes to be ready.
    let ramp = |t: u64| 2.0 + 28.0 * (t as f64 / 3600.0).min(1.0);
    let policy = Policy {
        max: 50,
        ..Policy::default()
    };
    let (reactive_peak, reactive) = run(policy.clone(), 5, 70, 180, false, ramp);
    let first = &reactive[0];
    assert_eq!(first.direction, Direction::Up);
    assert!(
        first.input.utilization > 0.8 && first.input.utilization < 1.0,
        "{first:?}"
    );
    assert!(first.reason.contains("is past 80%"), "{}", first.reason);
    // Reacting alone, replicas that take three minutes fall behind this ramp.
    assert!(reactive_peak > 1.0, "reactive peak {reactive_peak}");

    let predictive = Policy {
        lead: Some(Duration::from_secs(180)),
        ..policy
    };
    let (peak, changes) = run(predictive, 5, 70, 180, true, ramp);
    assert!(peak < 0.85, "scaled ahead: the peak {peak} stays near 80%");
    assert!(
        changes[0]
            .reason
            .contains("the forecast brings utilization to"),
        "{}",
        changes[0].reason
    );
    assert!(changes[0].input.utilization <= 0.8, "{:?}", changes[0]);
}

#[test]
fn a_metric_wandering_around_a_threshold_does_not_flap() {
    // Around 80%: one scale-up, then inside the band for good.
    let (_, changes) = run(Policy::default(), 5, 30, 0, false, |t| {
        if (t / STEP).is_multiple_of(2) {
            3.9
        } else {
            4.1
        }
    });
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].desired, 7);
    // Around 30% every 15 s: the five-minute stabilization keeps the size.
    let (_, changes) = run(Policy::default(), 10, 30, 0, false, |t| {
        if (t / STEP).is_multiple_of(2) {
            2.9
        } else {
            3.1
        }
    });
    assert!(changes.is_empty(), "{changes:?}");
    // Below 30% for good: down, once the window has seen only low wants, a step at a time.
    let (_, changes) = run(Policy::default(), 10, 30, 0, false, |_| 1.0);
    assert!(!changes.is_empty());
    assert!(
        changes[0].at >= 300,
        "not before the stabilization window: {changes:?}"
    );
    assert!(changes.iter().all(|d| d.input.current - d.desired <= 2));
    assert_eq!(changes.last().unwrap().desired, 2, "{changes:?}");
}

#[test]
fn cooldowns_steps_and_bounds_hold() {
    let policy = Policy {
        max: 6,
        ..Policy::default()
    };
    let (_, changes) = run(policy, 1, 10, 0, false, |_| 10.0);
    let sizes: Vec<(u64, u32)> = changes.iter().map(|d| (d.at, d.desired)).collect();
    // At once: 1 → 5 (a step of 4); the next only after the minute's cooldown, and never
    // past the maximum.
    assert_eq!(sizes, [(0, 5), (60, 6)]);
    assert!(
        changes[1].reason.contains("held at the maximum 6"),
        "{}",
        changes[1].reason
    );

    let mut s = Scaler::new(Policy::default());
    let up = s.decide(
        0,
        Input {
            current: 2,
            utilization: 0.95,
            predicted: None,
        },
    );
    assert_eq!((up.direction, up.desired), (Direction::Up, 4));
    let held = s.decide(
        30,
        Input {
            current: 4,
            utilization: 0.95,
            predicted: None,
        },
    );
    assert_eq!(held.direction, Direction::Hold);
    assert!(
        held.reason
            .contains("cooling down after the change at 0 until 60"),
        "{}",
        held.reason
    );
    // A minimum holds too, and no utilization holds the size.
    let mut s = Scaler::new(Policy {
        min: 3,
        down_stabilization: Duration::ZERO,
        ..Policy::default()
    });
    let d = s.decide(
        0,
        Input {
            current: 4,
            utilization: 0.05,
            predicted: None,
        },
    );
    assert_eq!(d.desired, 3);
    assert!(d.reason.contains("held at the minimum 3"), "{}", d.reason);
    let d = s.decide(
        400,
        Input {
            current: 3,
            utilization: f64::NAN,
            predicted: None,
        },
    );
    assert_eq!((d.direction, d.desired), (Direction::Hold, 3));
}

#[test]
fn a_policy_that_would_flap_or_cannot_hold_is_refused() {
    assert!(Policy::default().check().is_ok());
    let bad = [
        Policy {
            min: 5,
            max: 2,
            ..Policy::default()
        },
        Policy {
            target: 0.9,
            ..Policy::default()
        },
        Policy {
            down_at: 0.7,
            ..Policy::default()
        },
        Policy {
            up_at: f64::NAN,
            ..Policy::default()
        },
        Policy {
            max_step_up: 0,
            ..Policy::default()
        },
    ];
    for p in bad {
        assert!(p.check().is_err(), "{p:?}");
    }
}
