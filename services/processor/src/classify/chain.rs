use super::{Classification, Classifier, ClassifyInput};

/// Links in order; the first category wins, tags accumulate.
pub struct Chain {
    links: Vec<Box<dyn Classifier>>,
}

impl Chain {
    pub fn new(links: Vec<Box<dyn Classifier>>) -> Self {
        Self { links }
    }
}

#[async_trait::async_trait]
impl Classifier for Chain {
    async fn classify(&self, input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        let mut tags: Vec<String> = Vec::new();
        for link in &self.links {
            // a failing link is skipped, not fatal: the next one (or the fallback) decides
            let verdict = match link.classify(input).await {
                Ok(v) => v,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "classifier link failed");
                    None
                }
            };
            let Some(verdict) = verdict else { continue };
            for tag in verdict.tags {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if verdict.category_id.is_some() {
                return Ok(Some(Classification { tags, ..verdict }));
            }
        }
        Ok((!tags.is_empty()).then(|| Classification {
            tags,
            ..Default::default()
        }))
    }
}
