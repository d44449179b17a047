//! Classification behind one trait. It never blocks booking: any error or timeout falls back to
//! the workspace's "Uncategorized" category.

use sepay_core::NormalizedTransaction;
use uuid::Uuid;

/// A classifier's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub category_id: Uuid,
    /// Which link of the chain decided (stored on the wallet transaction).
    pub decided_by: String,
    pub confidence: Option<f32>,
}

#[async_trait::async_trait]
pub trait Classifier: Send + Sync {
    /// `Ok(None)`: no opinion, use the fallback.
    async fn classify(&self, ws_id: Uuid, tx: &NormalizedTransaction) -> anyhow::Result<Option<Classification>>;
}

/// The default: every transaction gets the fallback category.
pub struct FallbackOnly;

#[async_trait::async_trait]
impl Classifier for FallbackOnly {
    async fn classify(&self, _ws_id: Uuid, _tx: &NormalizedTransaction) -> anyhow::Result<Option<Classification>> {
        Ok(None)
    }
}

pub const FALLBACK_INCOME: &str = "Uncategorized Income";
pub const FALLBACK_EXPENSE: &str = "Uncategorized Expense";
/// `classified_by` of a fallback booking.
pub const FALLBACK_DECIDER: &str = "fallback";
