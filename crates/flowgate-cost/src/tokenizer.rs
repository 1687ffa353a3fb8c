//! Exact token counts for OpenAI's models: the BPE vocabulary each model uses (`o200k_base`
//! for GPT-4o, GPT-4.1, GPT-5 and the o-series; `cl100k_base` for GPT-4, GPT-3.5 and the
//! `text-embedding-3` models), from `tiktoken-rs`, which ships the vocabularies inside the
//! binary (nothing is downloaded). Other models (Claude, Llama, a deployment named
//! otherwise) are counted by the documented approximation of [`text_tokens`].
//!
//! A vocabulary is loaded on its first use (a fraction of a second and tens of MiB);
//! [`Tokenizer::warm`] loads it ahead, off the request path.

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer as Vocabulary, get_tokenizer};

/// Tokens of a piece of text: a token per four ASCII characters, one per other character.
pub fn text_tokens(s: &str) -> u64 {
    let (ascii, other) = s.chars().fold((0u64, 0u64), |(a, o), c| {
        if c.is_ascii() { (a + 1, o) } else { (a, o + 1) }
    });
    ascii.div_ceil(4) + other
}

/// How the text of one request is counted.
#[derive(Clone, Copy)]
pub enum Tokenizer {
    /// A token per four ASCII characters, one per other character.
    Approximate,
    /// The model's own vocabulary.
    Exact(Vocabulary),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokenizer::Approximate => f.write_str("Approximate"),
            Tokenizer::Exact(v) => write!(f, "Exact({v:?})"),
        }
    }
}

impl Tokenizer {
    /// The tokenizer of `model` (a fine-tune's `ft:BASE:...` counts as its base).
    pub fn of(model: Option<&str>) -> Tokenizer {
        match model.and_then(get_tokenizer) {
            Some(v @ (Vocabulary::O200kBase | Vocabulary::Cl100kBase)) => Tokenizer::Exact(v),
            _ => Tokenizer::Approximate,
        }
    }

    /// The tokenizer prompts of `model` are counted with: its own when `exact` (and it has
    /// one), else the rule of thumb (`[limits] token_count`).
    pub fn counting(model: Option<&str>, exact: bool) -> Tokenizer {
        if exact {
            Tokenizer::of(model)
        } else {
            Tokenizer::Approximate
        }
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        match self {
            Tokenizer::Exact(Vocabulary::O200kBase) => Some(tiktoken_rs::o200k_base_singleton()),
            Tokenizer::Exact(Vocabulary::Cl100kBase) => Some(tiktoken_rs::cl100k_base_singleton()),
            _ => None,
        }
    }

    /// The tokens of `text`.
    pub fn count(self, text: &str) -> u64 {
        match self.bpe() {
            Some(bpe) => bpe.encode_ordinary(text).len() as u64,
            None => text_tokens(text),
        }
    }

    /// Loads the vocabularies of exact counting now, so that no request waits for them.
    pub fn warm() {
        let _ = tiktoken_rs::o200k_base_singleton();
        let _ = tiktoken_rs::cl100k_base_singleton();
    }

    /// Whether counts are exact.
    pub fn is_exact(self) -> bool {
        matches!(self, Tokenizer::Exact(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_count_exactly_and_others_by_the_rule_of_thumb() {
        let hello = "Hello, world! How are you today?";
        // As OpenAI's tokenizer counts it (o200k_base and cl100k_base agree here).
        assert_eq!(Tokenizer::of(Some("gpt-4o-mini")).count(hello), 9);
        assert_eq!(Tokenizer::of(Some("gpt-4")).count(hello), 9);
        assert!(Tokenizer::of(Some("gpt-5")).is_exact());
        assert!(Tokenizer::of(Some("ft:gpt-4o-mini-2024-07-18:acme::abc")).is_exact());
        let claude = Tokenizer::of(Some("claude-sonnet-4-5"));
        assert!(!claude.is_exact());
        assert_eq!(claude.count(hello), text_tokens(hello));
        assert!(!Tokenizer::of(None).is_exact());
    }
}
