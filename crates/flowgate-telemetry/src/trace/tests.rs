use std::time::Duration;

use flowgate_clock::Clock;

use http::HeaderValue;

use super::spans::{Kind, Value};
use super::*;
use crate::RequestRecord;

#[test]
fn traceparent_is_read_and_written_as_w3c_says() {
    let v = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let p = parse_traceparent(&v).unwrap();
    assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
    assert!(p.sampled);
    assert_eq!(traceparent(&p.trace_id, &p.span_id, true), v);
    // A later version may add fields; version ff, zero ids, upper case and bad lengths are
    // not traceparents.
    assert!(
        parse_traceparent(&HeaderValue::from_static(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"
        ))
        .is_some_and(|p| !p.sampled)
    );
    for bad in [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "garbage",
    ] {
        assert!(
            parse_traceparent(&HeaderValue::from_static(bad)).is_none(),
            "{bad}"
        );
    }
}

#[test]
fn sampling_follows_the_parent_or_the_ratio() {
    let now = flowgate_clock::ManualClock::at_epoch_2026().now();
    let parent = |sampled| Parent {
        trace_id: [7; 16],
        span_id: [3; 8],
        sampled,
    };
    let follow = Sampler {
        ratio: 0.0,
        parent_based: true,
    };
    let t = follow.decide(Some(&parent(true)), now).unwrap();
    assert_eq!((t.trace_id, t.parent), ([7; 16], Some([3; 8])));
    assert!(follow.decide(Some(&parent(false)), now).is_none());
    assert!(
        follow.decide(None, now).is_none(),
        "ratio 0: none of its own"
    );
    let all = Sampler {
        ratio: 1.0,
        parent_based: false,
    };
    assert!(
        all.decide(Some(&parent(false)), now).is_some(),
        "the parent ignored"
    );
    let t = all.decide(None, now).unwrap();
    assert_ne!(t.trace_id, [0; 16]);
    assert_eq!(t.parent, None);
    let some = Sampler {
        ratio: 0.1,
        parent_based: true,
    };
    let n = (0..20_000)
        .filter(|_| some.decide(None, now).is_some())
        .count();
    assert!((1_600..2_400).contains(&n), "{n} of 20000 at 10%");
}

#[test]
fn a_record_becomes_a_server_span_and_its_stages_children() {
    let start = flowgate_clock::ManualClock::at_epoch_2026().now();
    let mut t = Sampler {
        ratio: 1.0,
        parent_based: true,
    }
    .decide(None, start)
    .unwrap();
    t.stage(
        Stage::Cache("miss"),
        start,
        start + Duration::from_micros(50),
    );
    t.stage(
        Stage::Attempt {
            endpoint: "a".into(),
            number: 1,
            status: 0,
            error: Some("connect".into()),
        },
        start + Duration::from_millis(1),
        start + Duration::from_millis(2),
    );
    let id = span_id();
    t.stage_with(
        id,
        Stage::Attempt {
            endpoint: "b".into(),
            number: 2,
            status: 200,
            error: None,
        },
        start + Duration::from_millis(2),
        start + Duration::from_millis(9),
    );
    let mut rec = RequestRecord::empty();
    rec.route = "chat".into();
    rec.status = 200;
    rec.at_ms = 1_796_569_445_000;
    rec.total = Duration::from_millis(10);
    rec.model = Some("gpt-4o-mini".into());
    rec.provider = Some("openai");
    rec.attempts = 2;
    rec.spend = Some(crate::Spend {
        usage: flowgate_cost::Usage {
            prompt_tokens: 31,
            completion_tokens: 64,
            ..Default::default()
        },
        estimated: false,
        usd: Some(rust_decimal::Decimal::new(42, 6)),
        cached: false,
        max_tokens: None,
    });
    let spans = spans::of(&rec, &t);
    assert_eq!(spans.len(), 4);
    let root = &spans[0];
    assert_eq!(
        (root.kind, root.parent, root.name.as_str()),
        (Kind::Server, None, "GET chat")
    );
    assert_eq!(root.end_ns - root.start_ns, 10_000_000);
    let attr = |s: &spans::Span, k: &str| {
        s.attributes
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        attr(root, "gen_ai.usage.output_tokens"),
        Some(Value::Int(64))
    );
    assert_eq!(
        attr(root, "flowgate.cost_usd"),
        Some(Value::Str("0.000042".into()))
    );
    let (cache, failed, answered) = (&spans[1], &spans[2], &spans[3]);
    assert_eq!(
        (cache.name.as_str(), cache.parent),
        ("cache lookup", Some(t.span_id))
    );
    assert_eq!(failed.name, "chat gpt-4o-mini");
    assert_eq!(failed.error.as_deref(), Some("connect"));
    assert_eq!(
        attr(failed, "gen_ai.usage.input_tokens"),
        None,
        "not the attempt that answered"
    );
    assert_eq!((answered.span_id, answered.kind), (id, Kind::Client));
    assert_eq!(
        attr(answered, "gen_ai.usage.input_tokens"),
        Some(Value::Int(31))
    );
    assert_eq!(
        attr(answered, "gen_ai.provider.name"),
        Some(Value::Str("openai".into()))
    );
    assert_eq!(
        attr(answered, "server.address"),
        Some(Value::Str("b".into()))
    );
    assert_eq!(answered.start_ns - root.start_ns, 2_000_000);
    // As OTLP JSON.
    let j: serde_json::Value =
        serde_json::from_slice(&otlp::request(&spans, "flowgate", "h")).unwrap();
    let s = &j["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(s.as_array().unwrap().len(), 4);
    assert_eq!(s[0]["traceId"], hex(&t.trace_id));
    assert_eq!(s[0]["kind"], 2);
    assert_eq!(s[3]["parentSpanId"], hex(&t.span_id));
    assert_eq!(s[2]["status"]["code"], 2);
    assert_eq!(
        j["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "flowgate"
    );
}
