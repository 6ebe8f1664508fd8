//! Prompt token counting with the OpenAI BPE encodings.
//!
//! A byte-level BPE token always covers at least one byte, so the UTF-8 length of the text is
//! an upper bound on its token count. The exact (and much more expensive) count runs only when
//! that bound says a limit could be crossed.

use crate::extract::{Api, Extracted};

/// An OpenAI BPE encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Cl100kBase,
    O200kBase,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "cl100k_base" => Some(Encoding::Cl100kBase),
            "o200k_base" => Some(Encoding::O200kBase),
            _ => None,
        }
    }

    /// The encoding a model uses; `fallback` for models that are not OpenAI's.
    pub fn for_model(model: &str, fallback: Encoding) -> Encoding {
        let m = model.rsplit('/').next().unwrap_or(model);
        if m.starts_with("gpt-4o")
            || m.starts_with("gpt-4.1")
            || m.starts_with("gpt-4.5")
            || m.starts_with("gpt-5")
            || m.starts_with("o1")
            || m.starts_with("o3")
            || m.starts_with("o4")
            || m.starts_with("chatgpt-4o")
        {
            Encoding::O200kBase
        } else if m.starts_with("gpt-4")
            || m.starts_with("gpt-3.5")
            || m.starts_with("text-embedding-")
        {
            Encoding::Cl100kBase
        } else {
            fallback
        }
    }
}

/// Whether this build counts tokens exactly and decodes token ids. The filter's build does
/// not (the vocabularies would cost every Envoy worker tens of megabytes): where the byte
/// bound cannot settle a limit, or a prompt is given as token ids, it leaves the decision to
/// the server, which reads every inference body (see docs/ARCHITECTURE.md, D20).
pub const EXACT: bool = cfg!(feature = "tokenizer");

/// Exact number of tokens in `text`.
#[cfg(feature = "tokenizer")]
pub fn count(enc: Encoding, text: &str) -> u64 {
    bpe(enc).encode_ordinary(text).len() as u64
}

#[cfg(feature = "tokenizer")]
fn bpe(enc: Encoding) -> &'static tiktoken_rs::CoreBPE {
    match enc {
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
    }
}

/// The text of token ids (`None` when an id is not in the vocabulary or the bytes are not
/// UTF-8, or without the tokenizer: such prompts are then refused).
#[cfg(feature = "tokenizer")]
pub fn decode(enc: Encoding, ids: &[u32]) -> Option<String> {
    bpe(enc).decode(ids).ok()
}

#[cfg(not(feature = "tokenizer"))]
pub fn decode(_enc: Encoding, _ids: &[u32]) -> Option<String> {
    None
}

/// Token ids of `text` (tests and tools).
#[cfg(feature = "tokenizer")]
pub fn encode(enc: Encoding, text: &str) -> Vec<u32> {
    bpe(enc).encode_ordinary(text)
}

/// Without the tokenizer the byte length is used: an upper bound, so limits fail closed.
#[cfg(not(feature = "tokenizer"))]
pub fn count(_enc: Encoding, text: &str) -> u64 {
    text.len() as u64
}

/// Tokens each message adds for its role and separators, and the reply priming, in the chat
/// formats (the figure OpenAI documents for its chat models).
const PER_ITEM: u64 = 3;
const PRIMING: u64 = 3;

fn overhead(x: &Extracted) -> u64 {
    match x.api {
        Api::ChatCompletions | Api::Responses | Api::AnthropicMessages => {
            x.items as u64 * PER_ITEM + PRIMING
        }
        Api::Completions | Api::Embeddings | Api::Generic => 0,
    }
}

/// Prompt size of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptTokens {
    pub tokens: u64,
    /// False when `tokens` is the byte upper bound (the exact count was not needed).
    pub exact: bool,
}

/// Count the prompt tokens of `x`, exactly only when `limit` could be exceeded.
pub fn prompt_tokens(x: &Extracted, enc: Encoding, limit: Option<u64>) -> PromptTokens {
    let base = overhead(x) + x.raw_token_count;
    let bound: u64 = base + x.segments.iter().map(|s| s.text.len() as u64).sum::<u64>();
    if limit.is_none_or(|l| bound <= l) {
        return PromptTokens {
            tokens: bound,
            exact: false,
        };
    }
    // One count over all segments joined by line breaks (a break is a token of its own at
    // most, so this stays an upper bound of counting each field): one tokenizer pass instead
    // of one per field, which matters for bodies with thousands of schema strings.
    let mut joined = String::with_capacity(bound as usize);
    for seg in &x.segments {
        joined.push_str(&seg.text);
        joined.push('\n');
    }
    if !EXACT {
        return PromptTokens {
            tokens: bound,
            exact: false,
        };
    }
    let exact = base + count(enc, &joined);
    PromptTokens {
        tokens: exact,
        exact: true,
    }
}

#[cfg(all(test, feature = "tokenizer"))]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_match_known_values() {
        // "hello world" is two tokens in both encodings.
        assert_eq!(count(Encoding::Cl100kBase, "hello world"), 2);
        assert_eq!(count(Encoding::O200kBase, "hello world"), 2);
        assert_eq!(
            Encoding::for_model("gpt-4o-mini", Encoding::Cl100kBase),
            Encoding::O200kBase
        );
        assert_eq!(
            Encoding::for_model("gpt-4-turbo", Encoding::O200kBase),
            Encoding::Cl100kBase
        );
    }
}
