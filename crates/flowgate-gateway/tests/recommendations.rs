//! `GET /api/v1/cost/recommendations`: a cheaper model of the same tier, a cap for
//! `max_tokens` that requests ask for and do not use, and a longer TTL for a cache
//! category whose misses are for answers that had just expired, each with its evidence,
//! its numbers the ledger's.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;

/// An OpenAI upstream billing 500 prompt and 100 answer tokens per answer.
async fn upstream() -> String {
    let (url, _) = scripted_upstream(|_req| {
        let answer = r#"{"id":"c","object":"chat.completion","model":"big","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":500,"completion_tokens":100}}"#;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
    })
    .await;
    url
}

fn config(url: &str) -> String {
    format!(
        "[models.\"big\"]\ninput_usd_per_mtok = 10\noutput_usd_per_mtok = 30\ncontext_window = 128000\n\
         capabilities = [\"chat\", \"tools\", \"streaming\"]\n\n\
         [models.\"small\"]\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 3\ncontext_window = 16000\n\
         capabilities = [\"chat\", \"tools\", \"streaming\"]\n\n\
         [[cost.tiers]]\nname = \"work\"\nmodels = [\"big\", \"small\"]\n\n\
         [cache]\nenabled = true\nmemory = \"16MiB\"\n\n\
         [[cache.categories]]\nname = \"faq\"\nmodel = \"big\"\nttl = \"60s\"\n\n\
         [pools.llm]\nendpoints = [{{ url = \"{url}\" }}]\n\n\
         [[routes]]\nname = \"capped\"\nkind = \"openai\"\nprefix = \"/capped\"\npool = \"llm\"\n\
         shaping = {{ max_tokens_cap = 256 }}\n\n\
         [[routes]]\nname = \"chat\"\nkind = \"openai\"\nprefix = \"/v1\"\npool = \"llm\"\n"
    )
}

fn ask(n: u32) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"big","temperature":0,"max_tokens":4096,"messages":[{{"role":"user","content":"question {n}"}}]}}"#
    ))
}

async fn admin(gw: &flowgate_gateway::Running, path: &str) -> (StatusCode, serde_json::Value) {
    let r = send(&client(), get(gw.admin_addr, path)).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

#[tokio::test]
async fn recommendations_carry_their_evidence_and_agree_with_the_ledger() {
    let clock = flowgate_clock::ManualClock::at_epoch_2026();
    let gw = gateway_on(clock.shared(), &config(&upstream().await)).await;
    let c = client();
    let chat = |n| post(gw.data_addr, "/v1/chat/completions", ask(n));
    // 25 questions, kept 60 s; 5 asked again at once (hits); all 25 again 70 s later,
    // when their answers had expired 10 s before.
    for n in 0..25 {
        send(&c, chat(n)).await.expect(StatusCode::OK);
    }
    for n in 0..5 {
        let r = send(&c, chat(n)).await;
        assert_eq!(r.headers["x-flowgate-cache"], "hit-l1");
    }
    clock.advance(Duration::from_secs(70));
    for n in 0..25 {
        let r = send(&c, chat(n)).await;
        assert_eq!(r.headers["x-flowgate-cache"], "miss");
    }

    // The same asks on a route whose shaping caps them at 256: what went upstream is
    // what counts, and 256 for answers of 100 is not too much.
    for n in 100..125 {
        let r = send(
            &c,
            post(gw.data_addr, "/capped/v1/chat/completions", ask(n)),
        )
        .await;
        r.expect(StatusCode::OK);
    }
    let (status, v) = admin(&gw, "/api/v1/cost/recommendations?window=1h").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let list = v["recommendations"].as_array().unwrap();
    let kinds: Vec<&str> = list.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    // By dollars saved: chat's model, faq's TTL, the capped route's model; then the cap.
    assert_eq!(
        kinds,
        ["cheaper_model", "longer_ttl", "cheaper_model", "max_tokens"],
        "{v:#}"
    );
    assert_eq!(list[2]["route"], "capped");

    // 50 answers of 500 × $10 + 100 × $30 per million: $0.4; at small's prices $0.04.
    let m = &list[0];
    assert_eq!(
        (m["route"].as_str(), m["model"].as_str()),
        (Some("chat"), Some("big"))
    );
    assert_eq!(m["evidence"]["instead"], "small");
    assert_eq!(m["evidence"]["requests"], 50);
    assert_eq!(m["evidence"]["spent_usd"], "0.4");
    assert_eq!(m["evidence"]["would_cost_usd"], "0.04");
    assert_eq!(m["saving_usd"], "0.36");
    let (_, summary) = admin(&gw, "/api/v1/cost/summary?window=1h").await;
    let (_, chat) = admin(&gw, "/api/v1/cost/summary?window=1h&route=chat").await;
    assert_eq!(chat["total"]["usd"], m["evidence"]["spent_usd"]);
    assert_eq!(v["spent_usd"], summary["total"]["usd"]);

    // 25 of the category's 75 misses had expired within a quarter of the TTL.
    let t = &list[1];
    assert_eq!(t["category"], "faq");
    assert_eq!(t["evidence"]["suggested_ttl_seconds"], 75);
    assert_eq!(t["evidence"]["would_have_hit"], 25);
    assert_eq!(t["evidence"]["misses"], 75);
    assert_eq!(t["change"], "[[cache.categories]] \"faq\": ttl = \"75s\"");
    // Each hit saved 500 × $10 + 100 × $30 per million: $0.008.
    assert_eq!(t["evidence"]["usd_per_hit"], 0.008);
    assert_eq!(t["saving_usd"], "0.2");

    // Asked 4,096 answer tokens, used 100: a cap of 128 (the capped route: none).
    let x = &list[3];
    assert_eq!(x["route"], "chat");
    assert_eq!(x["evidence"]["avg_max_tokens"], 4096);
    assert_eq!(x["evidence"]["longest_answer_tokens"], 100);
    assert_eq!(x["evidence"]["suggested_cap"], 128);

    // A filter narrows the ledger read; a misspelt one is refused.
    let (_, none) = admin(&gw, "/api/v1/cost/recommendations?window=1h&route=other").await;
    assert_eq!(
        none["recommendations"].as_array().unwrap().len(),
        1,
        "the cache's own"
    );
    let (status, err) = admin(&gw, "/api/v1/cost/recommendations?windw=1h").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("windw"),
        "{err}"
    );
}
