use super::{Classification, Classifier, ClassifyInput};
use sepay_core::classify::NaiveBayes;
use sepay_store::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a workspace's trained model is reused before retraining on newer history.
const MODEL_TTL: Duration = Duration::from_secs(300);
/// Bookings learned from per workspace.
const HISTORY: i64 = 5000;
/// Workspaces whose models are kept at most (expired ones go first when full).
const MAX_MODELS: usize = 5_000;

type Models = HashMap<Uuid, (Instant, Arc<NaiveBayes<Uuid>>)>;

/// Naive Bayes over the workspace's own categorized transactions: free, offline, no credits.
pub struct Learned {
    pub db: PgPool,
    pub min_confidence: f64,
    pub min_examples: usize,
    models: Mutex<Models>,
}

impl Learned {
    pub fn new(db: PgPool, min_confidence: f64, min_examples: usize) -> Self {
        Self {
            db,
            min_confidence,
            min_examples,
            models: Mutex::new(HashMap::new()),
        }
    }

    async fn model(&self, ws_id: Uuid) -> anyhow::Result<Arc<NaiveBayes<Uuid>>> {
        if let Some((at, model)) = self.models.lock().unwrap_or_else(|p| p.into_inner()).get(&ws_id)
            && at.elapsed() < MODEL_TTL
        {
            return Ok(model.clone());
        }
        let history = sepay_store::classification::history(&self.db, ws_id, HISTORY).await?;
        let model = Arc::new(NaiveBayes::train(
            history.iter().map(|(text, category)| (text.as_str(), *category)),
        ));
        crate::settings::insert_bounded(
            &mut self.models.lock().unwrap_or_else(|p| p.into_inner()),
            MAX_MODELS,
            ws_id,
            (Instant::now(), model.clone()),
            |(at, _)| at.elapsed() >= MODEL_TTL,
        );
        Ok(model)
    }
}

#[async_trait::async_trait]
impl Classifier for Learned {
    async fn classify(&self, input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        let model = self.model(input.ws_id).await?;
        if model.examples() < self.min_examples {
            return Ok(None);
        }
        Ok(model
            .predict(&input.tx.description)
            .filter(|(_, p)| *p >= self.min_confidence)
            .map(|(category, p)| Classification {
                category_id: Some(category),
                decided_by: "learned".into(),
                confidence: Some(p as f32),
                tags: vec![],
            }))
    }
}
