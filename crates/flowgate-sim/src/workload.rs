//! Workload generators: which prompt each request carries.
//!
//! Real LLM traffic is skewed: a few analysis types and prompts are asked again and again
//! and a long tail is asked once. [`ZipfWorkload`] draws prompt ids from a Zipf distribution
//! over `distinct` prompts, so a run exercises hot keys and the tail as real traffic does.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::json;

/// One request of a workload.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// Rank of the prompt (1 = the most popular).
    pub prompt: u64,
    pub stream: bool,
    /// An OpenAI chat-completions body.
    pub body: Bytes,
}

/// Zipf-distributed prompts, a share of them streamed. Seeded: the same seed gives the same
/// sequence.
#[derive(Debug)]
pub struct ZipfWorkload {
    zipf: Zipf<f64>,
    stream_share: f64,
    rng: SmallRng,
    model: String,
}

impl ZipfWorkload {
    /// `distinct` prompts with exponent `s` (1.0 is classic Zipf); `stream_share` of the
    /// requests ask for SSE.
    pub fn new(distinct: u64, s: f64, stream_share: f64, seed: u64) -> Result<Self, String> {
        let zipf = Zipf::new(distinct.max(1) as f64, s)
            .map_err(|e| format!("invalid Zipf parameters: {e}"))?;
        Ok(ZipfWorkload {
            zipf,
            stream_share,
            rng: SmallRng::seed_from_u64(seed),
            model: "gpt-4o-mini".into(),
        })
    }

    /// The next request.
    pub fn next_item(&mut self) -> WorkItem {
        let prompt = self.zipf.sample(&mut self.rng) as u64;
        let stream = self.rng.random::<f64>() < self.stream_share;
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You are a cost-analysis assistant."},
                {"role": "user", "content": format!("Analyse workload pattern #{prompt} and recommend savings.")}
            ],
            "temperature": 0,
            "max_tokens": 64,
            "stream": stream
        });
        WorkItem {
            prompt,
            stream,
            body: Bytes::from(body.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed_and_repeatable() {
        let mut a = ZipfWorkload::new(1000, 1.0, 0.25, 3).unwrap();
        let mut b = ZipfWorkload::new(1000, 1.0, 0.25, 3).unwrap();
        let mut top = 0;
        let mut streams = 0;
        for _ in 0..10_000 {
            let x = a.next_item();
            let y = b.next_item();
            assert_eq!(x.prompt, y.prompt);
            assert_eq!(x.body, y.body);
            top += u32::from(x.prompt == 1);
            streams += u32::from(x.stream);
        }
        // For s = 1 over 1000 prompts, rank 1 has probability 1/H(1000) ≈ 13.4%.
        assert!((1100..1600).contains(&top), "{top}");
        assert!((2200..2800).contains(&streams), "{streams}");
    }
}
