use super::{Classification, Classifier, ClassifyInput};

/// Category links in order (the first category wins, tags accumulate), and taggers that only add
/// tags, run alongside the links so a model tagger costs no extra time.
pub struct Chain {
    links: Vec<Box<dyn Classifier>>,
    taggers: Vec<Box<dyn Classifier>>,
}

impl Chain {
    pub fn new(links: Vec<Box<dyn Classifier>>) -> Self {
        Self { links, taggers: vec![] }
    }

    pub fn with_taggers(self, taggers: Vec<Box<dyn Classifier>>) -> Self {
        Self { taggers, ..self }
    }

    async fn decide(&self, input: &ClassifyInput<'_>) -> Classification {
        let mut tags: Vec<String> = Vec::new();
        for link in &self.links {
            let Some(verdict) = verdict_of(link.as_ref(), input).await else {
                continue;
            };
            add_tags(&mut tags, verdict.tags);
            if verdict.category_id.is_some() {
                return Classification { tags, ..verdict };
            }
        }
        Classification {
            tags,
            ..Default::default()
        }
    }
}

/// A failing link is skipped, not fatal: the next one (or the fallback) decides.
async fn verdict_of(link: &dyn Classifier, input: &ClassifyInput<'_>) -> Option<Classification> {
    match link.classify(input).await {
        Ok(verdict) => verdict,
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "classifier link failed");
            None
        }
    }
}

fn add_tags(tags: &mut Vec<String>, more: Vec<String>) {
    for tag in more {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
}

#[async_trait::async_trait]
impl Classifier for Chain {
    async fn classify(&self, input: &ClassifyInput<'_>) -> anyhow::Result<Option<Classification>> {
        // each half is bounded on its own: a slow tagger never costs the category, nor a slow
        // model link the tags
        let tagging = futures::future::join_all(self.taggers.iter().map(|t| verdict_of(t.as_ref(), input)));
        let (decided, tagged) = tokio::join!(
            tokio::time::timeout_at(input.deadline, self.decide(input)),
            tokio::time::timeout_at(input.deadline, tagging),
        );
        let mut decided = decided.unwrap_or_else(|_| {
            tracing::warn!("category links ran out of time");
            Classification::default()
        });
        match tagged {
            Ok(tagged) => tagged
                .into_iter()
                .flatten()
                .for_each(|v| add_tags(&mut decided.tags, v.tags)),
            Err(_) => tracing::warn!("taggers ran out of time"),
        }
        Ok((decided.category_id.is_some() || !decided.tags.is_empty()).then_some(decided))
    }
}
