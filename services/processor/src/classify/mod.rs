//! Classification behind one trait, as a chain: workspace rules → a classifier learned from the
//! workspace's own history → an optional language model paid with AI credits → the fallback
//! category; alongside, an optional model tagger choosing among the workspace's tags. It never blocks booking: the worker bounds the whole chain in time and any error,
//! timeout or missing credit falls back to "Uncategorized Income/Expense".

mod chain;
mod learned;
mod llm;
mod rules;

pub use chain::Chain;
pub use learned::Learned;
pub use llm::{
    DEFAULT_LLM_CREDITS_PER_CALL, DEFAULT_LLM_MIN_CONFIDENCE, DEFAULT_LLM_MODEL, DEFAULT_LLM_TAGGER,
    DEFAULT_LLM_TIMEOUT_MS, LlmConfig, LlmEnricher, LlmTagger,
};
pub use rules::Rules;

use sepay_core::NormalizedTransaction;
use uuid::Uuid;

/// What a link sees.
pub struct ClassifyInput<'a> {
    pub ws_id: Uuid,
    pub event_id: i64,
    pub tx: &'a NormalizedTransaction,
    /// When the chain's time budget ends; booking does not wait past it.
    pub deadline: tokio::time::Instant,
}

/// A link's verdict: a category (or none) and tags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    pub category_id: Option<Uuid>,
    /// Which link decided (stored on the wallet transaction).
    pub decided_by: String,
    pub confidence: Option<f32>,
    pub tags: Vec<String>,
}

#[async_trait::async_trait]
pub trait Classifier: Send + Sync {
    /// `Ok(None)` or no category: no opinion, the next link (or the fallback) decides.
    async fn classify(&self, input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>>;
}

/// Every transaction gets the fallback category (tests, and a chain with nothing configured).
pub struct FallbackOnly;

#[async_trait::async_trait]
impl Classifier for FallbackOnly {
    async fn classify(&self, _input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        Ok(None)
    }
}

pub const FALLBACK_INCOME: &str = "Uncategorized Income";
pub const FALLBACK_EXPENSE: &str = "Uncategorized Expense";
/// `classified_by` of a fallback booking.
pub const FALLBACK_DECIDER: &str = "fallback";
