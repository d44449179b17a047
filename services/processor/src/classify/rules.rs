use super::{Classification, Classifier, ClassifyInput};
use crate::settings::BookingSettings;
use sepay_core::classify::{Condition, Rule, apply_rules};
use sepay_store::classification::RuleRow;
use std::sync::Arc;
use uuid::Uuid;

/// The workspace's ordered rules (kept in memory until a change is announced: a new rule applies
/// to the next event).
pub struct Rules {
    pub settings: Arc<BookingSettings>,
}

/// A workspace's rule rows as rules, in order; a row whose conditions do not parse is skipped
/// (the admin page and `sepayctl` parse a rule before storing it, so only a row written by hand
/// can be one).
pub fn compile(rows: &[RuleRow]) -> Vec<Rule<Uuid>> {
    rows.iter()
        .filter_map(|r| {
            let conditions: Vec<Condition> = serde_json::from_value(r.conditions.clone()).ok()?;
            Some(Rule {
                match_all: r.match_all,
                conditions,
                category: r.category_id,
                tags: r.tags.clone(),
                stop_processing: r.stop_processing,
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(name: &str, conditions: serde_json::Value) -> RuleRow {
        RuleRow {
            id: Uuid::new_v4(),
            position: 0,
            name: name.into(),
            match_all: true,
            conditions,
            category_id: Some(Uuid::new_v4()),
            category_name: None,
            tags: vec![name.into()],
            stop_processing: false,
        }
    }

    #[test]
    fn rows_compile_in_order_and_a_row_that_does_not_parse_is_skipped() {
        let rows = [
            row("grab", json!([{"field": "content", "op": "contains", "value": "grab"}])),
            row("by hand", json!({"not": "a list of conditions"})),
            row("rent", json!([{"field": "content", "op": "contains", "value": "rent"}])),
        ];
        let rules = compile(&rows);
        let tags: Vec<&str> = rules.iter().map(|r| r.tags[0].as_str()).collect();
        assert_eq!(tags, ["grab", "rent"]);
        assert_eq!(rules[1].category, rows[2].category_id);
        assert_eq!(rules[0].conditions.len(), 1);
    }
}
