use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::pipeline::Sink;
use crate::record::RequestRecord;

/// 2026-12-01 00:00:00 UTC.
const T0: u64 = 1_796_083_200;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-history-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("history.redb")
}

fn record(route: &str, status: u16, ms: u64) -> RequestRecord {
    RequestRecord {
        route: Arc::from(route),
        pool: Some(Arc::from("llm")),
        status,
        duration: Duration::from_millis(ms / 2),
        total: Duration::from_millis(ms),
        cache: Some("miss"),
        ..RequestRecord::empty()
    }
}

#[test]
fn points_are_written_and_read_back_at_each_resolution_and_outlive_a_restart() {
    let path = temp("restart");
    let settings = HistorySettings {
        path: Some(path.clone()),
        ..HistorySettings::default()
    };
    {
        let (h, moved) = History::open(settings.clone(), T0).unwrap();
        assert!(moved.is_none());
        let sink = h.sink();
        let mut level = 0.0;
        h.add_probe(Box::new(move || {
            level += 1.0;
            vec![(
                "queue_depth{queue=\"chat\"}".to_string(),
                Sample::Gauge(level),
            )]
        }));
        // An hour and ten seconds: 30 requests in each 10 s, one in ten a 502.
        for tick in 1..=361u64 {
            for i in 0..30 {
                sink.take(&record("chat", if i % 10 == 0 { 502 } else { 200 }, 100));
            }
            let w = h.tick(T0 + tick * 10).unwrap();
            assert!(w.points > 0);
            // Each minute's points are handed over as it ends (what the detectors read).
            let rps = w
                .minutes
                .iter()
                .find(|(n, _)| n == "requests_per_second{route=\"chat\"}");
            if tick % 6 == 0 {
                let (_, p) = rps.expect("a minute ended");
                assert_eq!((p.t, p.value), (T0 + (tick / 6 - 1) * 60, 3.0));
            } else {
                assert!(w.minutes.is_empty(), "{:?}", w.minutes);
            }
        }
    }
    let (h, _) = History::open(settings, T0 + 3620).unwrap();
    let rps = "requests_per_second{route=\"chat\"}";
    let ten = h.read(rps, Resolution::TenSeconds, T0, T0 + 3610).unwrap();
    assert_eq!(ten.len(), 361);
    assert!(ten.iter().all(|p| p.value == 3.0), "{:?}", &ten[..3]);
    let minutes = h.read(rps, Resolution::Minute, T0, T0 + 3600).unwrap();
    assert_eq!(minutes.len(), 60);
    assert_eq!(
        minutes[0],
        Point {
            t: T0,
            value: 3.0,
            min: 3.0,
            max: 3.0
        }
    );
    let hours = h.read(rps, Resolution::Hour, T0, T0 + 7200).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].value, 3.0);
    let errors = h
        .read("error_ratio{pool=\"llm\"}", Resolution::Hour, T0, T0 + 7200)
        .unwrap();
    assert!((errors[0].value - 0.1).abs() < 1e-12);
    let p95 = h
        .read(
            "latency_ms_p95{route=\"chat\"}",
            Resolution::Minute,
            T0,
            T0 + 60,
        )
        .unwrap();
    assert!((p95[0].value - 100.0).abs() < 1.0, "{p95:?}");
    // The probe's gauge: 1, 2, ... 6 in the first minute.
    let q = h
        .read(
            "queue_depth{queue=\"chat\"}",
            Resolution::Minute,
            T0,
            T0 + 60,
        )
        .unwrap();
    assert_eq!(
        q[0],
        Point {
            t: T0,
            value: 3.5,
            min: 1.0,
            max: 6.0
        }
    );
    let names = h.series();
    for want in [
        rps,
        "requests_per_second{pool=\"llm\"}",
        "head_latency_ms_p99{route=\"chat\"}",
        "tokens_per_second{route=\"chat\"}",
        "cache_hit_ratio{tier=\"memory\"}",
        "spend_usd_per_hour",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn points_past_their_retention_are_deleted_and_the_file_stays_bounded() {
    let path = temp("retention");
    let settings = HistorySettings {
        path: Some(path.clone()),
        retention: [
            Duration::from_secs(600),
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
        ],
    };
    let (h, _) = History::open(settings, T0).unwrap();
    h.add_probe(Box::new(|| {
        (0..20)
            .map(|i| (format!("gauge{{n=\"{i}\"}}"), Sample::Gauge(1.0)))
            .collect()
    }));
    let mut rows = Vec::new();
    // Six hours of 20 series (and the spend series every history has).
    for tick in 1..=2160u64 {
        h.tick(T0 + tick * 10).unwrap();
        if tick % 360 == 0 {
            rows.push(h.rows().unwrap());
        }
    }
    let end = T0 + 21_600;
    let s = "gauge{n=\"0\"}";
    // The 10 s kept for 10 minutes (the prune runs hourly: at most an hour more).
    let ten = h.read(s, Resolution::TenSeconds, T0, end).unwrap();
    assert!(ten.len() <= 60 + 360 && ten.len() >= 60, "{}", ten.len());
    assert!(ten[0].t >= end - 600 - 3600);
    let minutes = h.read(s, Resolution::Minute, T0, end).unwrap();
    assert!(
        minutes.len() <= 120 && minutes.len() >= 60,
        "{}",
        minutes.len()
    );
    assert_eq!(h.read(s, Resolution::Hour, T0, end).unwrap().len(), 6);
    // Steady from the second hour: at most an hour more than the retention of 10 s and
    // minutes, while hours accumulate one each.
    for r in &rows[1..] {
        assert!(r[0] <= 21 * 420 && r[1] <= 21 * 120, "{rows:?}");
    }
    assert_eq!(rows[5][2], 21 * 6);
    assert!(h.file_bytes().unwrap() < 32 << 20);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_corrupt_history_file_is_moved_aside_and_a_fresh_one_kept() {
    let path = temp("corrupt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not a database, not at all").unwrap();
    let (h, moved) = History::open(
        HistorySettings {
            path: Some(path.clone()),
            ..HistorySettings::default()
        },
        T0,
    )
    .unwrap();
    let moved = moved.unwrap();
    assert_eq!(
        moved.to,
        PathBuf::from(format!("{}.corrupt-{T0}", path.display()))
    );
    assert_eq!(
        std::fs::read(&moved.to).unwrap(),
        b"not a database, not at all"
    );
    h.tick(T0 + 10).unwrap();
    assert!(h.series().iter().any(|s| s == "spend_usd_per_hour"));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_silent_route_reports_zero_requests_and_no_latency() {
    let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
    h.sink().take(&record("chat", 200, 10));
    h.tick(T0 + 10).unwrap();
    h.tick(T0 + 20).unwrap();
    let rps = h
        .read(
            "requests_per_second{route=\"chat\"}",
            Resolution::TenSeconds,
            T0,
            T0 + 30,
        )
        .unwrap();
    assert_eq!(rps.iter().map(|p| p.value).collect::<Vec<_>>(), [0.1, 0.0]);
    let lat = h
        .read(
            "latency_ms_p50{route=\"chat\"}",
            Resolution::TenSeconds,
            T0,
            T0 + 30,
        )
        .unwrap();
    assert_eq!(lat.len(), 1);
}

#[test]
fn the_last_seconds_are_read_live_at_one_second() {
    let (h, _) = History::open(HistorySettings::default(), T0).unwrap();
    h.watch_latency("chat", 50);
    let sink = h.sink();
    // 20 s of 10 requests a second; the last 5 s all failing, the last 10 s slow.
    for s in 1..=20u64 {
        for _ in 0..10 {
            let ms = if s > 10 { 100 } else { 10 };
            sink.take(&record("chat", if s > 15 { 500 } else { 200 }, ms));
        }
        h.tick(T0 + s).unwrap();
    }
    let slow = "slow_ratio{route=\"chat\",over_ms=\"50\"}";
    assert_eq!(h.live(slow, T0 + 20, 20), Some(0.5));
    assert_eq!(h.last_seen(slow), Some(T0 + 20));
    assert_eq!(h.last_seen("nope"), None);
    let now = T0 + 20;
    let errors = "error_ratio{route=\"chat\"}";
    assert_eq!(h.live(errors, now, 5), Some(1.0));
    assert_eq!(h.live(errors, now, 10), Some(0.5));
    assert_eq!(h.live(errors, now, 20), Some(0.25));
    assert_eq!(
        h.live("requests_per_second{route=\"chat\"}", now, 10),
        Some(10.0)
    );
    // Latencies are not kept live; unknown series are none.
    assert_eq!(h.live("latency_ms_p95{route=\"chat\"}", now, 10), None);
    assert_eq!(h.live("nope", now, 10), None);
    // The 10 s points were written as each 10 s ended: 10 a second, then half failing.
    let ten = h.read(errors, Resolution::TenSeconds, T0, now).unwrap();
    assert_eq!(ten.iter().map(|p| p.value).collect::<Vec<_>>(), [0.0, 0.5]);
}
