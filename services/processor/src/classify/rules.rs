use super::{Classification, Classifier, ClassifyInput};
use crate::settings::BookingSettings;
use sepay_core::classify::apply_rules;
use std::sync::Arc;

/// The workspace's ordered rules (kept in memory until a change is announced: a new rule applies
/// to the next event).
pub struct Rules {
    pub settings: Arc<BookingSettings>,
}

#[async_trait::async_trait]
impl Classifier for Rules {
    async fn classify(&self, input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        let rules = self.settings.rules(input.ws_id).await?;
        if rules.is_empty() {
            return Ok(None);
        }
        let outcome = apply_rules(&rules, input.tx);
        if outcome.category.is_none() && outcome.tags.is_empty() {
            return Ok(None);
        }
        Ok(Some(Classification {
            category_id: outcome.category,
            decided_by: "rules".into(),
            confidence: outcome.category.map(|_| 1.0),
            tags: outcome.tags,
        }))
    }
}
