use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::*;
use crate::usage::Usage;

/// 2026-12-01 00:00:00 UTC.
const T0: u64 = 1_796_083_200;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn dims(key: &str, team: &str, model: &str) -> Dims {
    Dims {
        key: Arc::from(key),
        team: Arc::from(team),
        route: Arc::from("chat"),
        model: Arc::from(model),
        provider: Arc::from("openai"),
    }
}

fn spend(usd: &str) -> Totals {
    let u = Usage {
        prompt_tokens: 100,
        completion_tokens: 10,
        ..Usage::default()
    };
    Totals::of(&u, false, d(usd), false)
}

fn whole(now: u64) -> Query {
    Query {
        from: T0 - DAY,
        to: now + 1,
        now,
        filter: Vec::new(),
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flowgate-ledger-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("ledger.redb")
}

#[test]
fn sums_group_by_each_name_and_survive_a_reopen() {
    let path = temp("reopen");
    let now = T0 + 10 * MINUTE;
    {
        let (l, moved) = Ledger::open(&path, Retention::default(), now).unwrap();
        assert_eq!(moved, None);
        l.add(T0 + 5, dims("a", "red", "gpt-4o"), &spend("0.001"));
        l.add(T0 + 65, dims("a", "red", "gpt-4o-mini"), &spend("0.0002"));
        l.add(T0 + 70, dims("b", "blue", "gpt-4o"), &spend("0.003"));
        // Read before and after the flush: the same numbers.
        let before = l.summary(&whole(now), Some(Dim::Team)).unwrap();
        let report = l.flush(now).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(l.summary(&whole(now), Some(Dim::Team)).unwrap(), before);
    }
    let (l, _) = Ledger::open(&path, Retention::default(), now).unwrap();
    let by_team = l.summary(&whole(now), Some(Dim::Team)).unwrap();
    let names: Vec<(&str, String, u64)> = by_team
        .iter()
        .map(|(n, t)| (n.as_str(), t.usd.to_string(), t.requests))
        .collect();
    assert_eq!(
        names,
        [("blue", "0.003".into(), 1), ("red", "0.0012".into(), 2)]
    );
    let by_model = l.summary(&whole(now), Some(Dim::Model)).unwrap();
    assert_eq!(by_model[0].0, "gpt-4o");
    assert_eq!(by_model[0].1.usd, d("0.004"));
    let all = l.summary(&whole(now), None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.usd, d("0.0042"));
    assert_eq!(all[0].1.input_tokens, 300);
    // A filter, and a series per minute.
    let q = Query {
        filter: vec![(Dim::Key, "a".into())],
        ..whole(now)
    };
    let series = l.series(&q, Step::Minute).unwrap();
    assert_eq!(
        series
            .iter()
            .map(|(b, t)| (*b, t.usd.to_string()))
            .collect::<Vec<_>>(),
        [(T0, "0.001".into()), (T0 + 60, "0.0002".into())]
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn adds_to_rows_already_written_and_rolls_minutes_into_hours() {
    let l = Ledger::in_memory(Retention::default()).unwrap();
    let now = T0 + 2 * HOUR;
    l.add(T0 + 1, dims("a", "", "m"), &spend("1"));
    l.flush(now).unwrap();
    l.add(T0 + 2, dims("a", "", "m"), &spend("2"));
    l.add(T0 + HOUR + 1, dims("a", "", "m"), &spend("4"));
    l.flush(now).unwrap();
    let minutes = l.series(&whole(now), Step::Minute).unwrap();
    assert_eq!(
        minutes
            .iter()
            .map(|(b, t)| (*b, t.usd, t.requests))
            .collect::<Vec<_>>(),
        [(T0, d("3"), 2), (T0 + HOUR, d("4"), 1)]
    );
    // A window older than the minutes' retention reads the hours.
    let long_after = T0 + 40 * DAY;
    let q = Query {
        from: T0 - DAY,
        to: long_after,
        now: long_after,
        filter: Vec::new(),
    };
    let hours = l.series(&q, Step::Hour).unwrap();
    assert_eq!(
        hours.iter().map(|(b, t)| (*b, t.usd)).collect::<Vec<_>>(),
        [(T0, d("3")), (T0 + HOUR, d("4"))]
    );
    let days = l.series(&q, Step::Day).unwrap();
    assert_eq!(
        days,
        [(T0, {
            let mut t = spend("3");
            t.add(&spend("4"));
            t.requests = 3;
            t.input_tokens = 300;
            t.output_tokens = 30;
            t
        })]
    );
}

#[test]
fn rows_past_their_retention_are_deleted_and_the_rest_kept() {
    let l = Ledger::in_memory(Retention::default()).unwrap();
    l.add(T0, dims("a", "", "m"), &spend("1"));
    l.flush(T0).unwrap();
    // 36 days on: the minute row is gone, the hour row is kept.
    let later = T0 + 36 * DAY;
    l.add(later, dims("a", "", "m"), &spend("2"));
    let report = l.flush(later).unwrap();
    assert_eq!(report.pruned, 1);
    let q = Query {
        from: T0 - DAY,
        to: later + 1,
        now: later,
        filter: Vec::new(),
    };
    let hours = l.summary(&q, None).unwrap();
    assert_eq!(hours[0].1.usd, d("3"));
    // 401 days on, the hour goes too.
    let much_later = T0 + 401 * DAY;
    let report = l.flush(much_later).unwrap();
    assert_eq!(report.pruned, 2, "the first hour and the second minute");
}

#[test]
fn a_file_that_is_not_a_ledger_is_moved_aside_and_a_fresh_one_started() {
    let path = temp("corrupt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is not a database, it is a note\n".repeat(200)).unwrap();
    let (l, moved) = Ledger::open(&path, Retention::default(), T0).unwrap();
    let moved = moved.expect("moved aside");
    assert_eq!(
        moved.to,
        PathBuf::from(format!("{}.corrupt-{T0}", path.display()))
    );
    assert!(
        std::fs::read(&moved.to)
            .unwrap()
            .starts_with(b"this is not"),
        "the old file is kept as it was"
    );
    l.add(T0, dims("a", "", "m"), &spend("1"));
    l.flush(T0).unwrap();
    assert_eq!(l.summary(&whole(T0), None).unwrap()[0].1.usd, d("1"));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn cache_hits_count_as_saved_not_spent() {
    let l = Ledger::in_memory(Retention::default()).unwrap();
    let u = Usage {
        prompt_tokens: 10,
        completion_tokens: 10,
        ..Usage::default()
    };
    l.add(
        T0,
        dims("", "", "m"),
        &Totals::of(&u, false, d("0.5"), true),
    );
    l.add(
        T0,
        dims("", "", "m"),
        &Totals::of(&u, true, d("0.25"), false),
    );
    let t = l.summary(&whole(T0), None).unwrap()[0].1;
    assert_eq!(
        (t.requests, t.cache_hits, t.estimated, t.usd, t.saved_usd),
        (2, 1, 1, d("0.25"), d("0.5"))
    );
}

#[test]
fn keys_and_rows_read_back_as_written() {
    let k = dims("key-1", "team ü", "claude-sonnet");
    let enc = row::encode_key(T0, &k);
    assert_eq!(row::decode_key(&enc), Some((T0, k)));
    assert_eq!(row::decode_key(&enc[..enc.len() - 1]), None);
    let t = spend("0.000000123").asked(Some(4096));
    assert_eq!(row::decode_totals(&row::encode_totals(&t)), Some(t));
    assert_eq!(row::decode_totals(&[3; row::TOTALS_LEN]), None);
    // A row of the first format: the same, without the max_tokens counts.
    let v2 = row::encode_totals(&t);
    let mut v1 = v2[..row::TOTALS_LEN - 32].to_vec();
    v1[0] = 1;
    let old = row::decode_totals(&v1).unwrap();
    assert_eq!((old.usd, old.requests, old.capped_requests), (t.usd, 1, 0));
    assert_eq!(row::decode_totals(&v2[..row::TOTALS_LEN - 1]), None);
}

#[test]
fn max_tokens_asked_and_used_add_up_and_the_most_used_is_kept() {
    let l = Ledger::in_memory(Retention::default()).unwrap();
    let answer = |out: u64| Usage {
        prompt_tokens: 10,
        completion_tokens: out,
        ..Usage::default()
    };
    for (out, asked, hit) in [
        (100, Some(4096), false),
        (300, Some(2048), false),
        (50, None, false),
        (900, Some(4096), true),
    ] {
        l.add(
            T0,
            dims("", "", "m"),
            &Totals::of(&answer(out), false, d("0.1"), hit).asked(asked),
        );
    }
    l.flush(T0).unwrap();
    let t = l.summary(&whole(T0), None).unwrap()[0].1;
    assert_eq!(
        (
            t.capped_requests,
            t.max_tokens_asked,
            t.capped_output_tokens,
            t.max_output_tokens
        ),
        (2, 6144, 400, 300),
        "a cache hit asked nothing of the provider"
    );
}

#[test]
fn a_ledger_another_process_holds_is_refused_and_left_alone() {
    let path = temp("held");
    let (held, _) = Ledger::open(&path, Retention::default(), T0).unwrap();
    held.add(T0, dims("a", "", "m"), &spend("1"));
    held.flush(T0).unwrap();
    let e = Ledger::open(&path, Retention::default(), T0).unwrap_err();
    assert!(e.to_string().contains("ledger.redb"), "{e}");
    let aside = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("corrupt")
        })
        .count();
    assert_eq!(aside, 0, "nothing was moved");
    assert_eq!(held.summary(&whole(T0), None).unwrap()[0].1.usd, d("1"));
    drop(held);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn budgets_made_through_the_api_are_kept_with_the_ledger() {
    let path = temp("budgets");
    {
        let (l, _) = Ledger::open(&path, Retention::default(), T0).unwrap();
        l.keep_budget("a", Some(b"{\"limit_usd\":\"1\"}")).unwrap();
        l.keep_budget("b", Some(b"{}")).unwrap();
        l.keep_budget("b", None).unwrap();
    }
    let (l, _) = Ledger::open(&path, Retention::default(), T0).unwrap();
    assert_eq!(
        l.budgets().unwrap(),
        [("a".to_string(), b"{\"limit_usd\":\"1\"}".to_vec())]
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_read_during_flushes_never_misses_a_row() {
    // Rows move from pending to the file at each flush; a read that took the file's
    // snapshot before a flush committed and the pending rows after it took them would
    // count them in neither (it did, once, under CI's load). Every read must see at least
    // what was added before it began.
    let path = temp("flush-race");
    let now = T0 + 10 * MINUTE;
    let (l, _) = Ledger::open(&path, Retention::default(), now).unwrap();
    let l = Arc::new(l);
    let added = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (l, added) = (l.clone(), added.clone());
        std::thread::spawn(move || {
            for i in 0..2_000u64 {
                l.add(now, dims("k", "t", "m"), &spend("0.001"));
                added.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i % 3 == 0 {
                    l.flush(now).unwrap();
                }
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let before = added.load(std::sync::atomic::Ordering::SeqCst);
        let seen = l
            .summary(&whole(now), None)
            .unwrap()
            .first()
            .map_or(0, |r| r.1.requests);
        assert!(
            seen >= before,
            "read {seen} requests, {before} were added before"
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 10, "{reads} reads");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
