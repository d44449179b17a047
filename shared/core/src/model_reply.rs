//! Reading a language model's answer. The model picks from a numbered list the processor sent;
//! whatever it says is checked here before anything is booked: an index outside the list is a
//! broken answer (its credits are released), an unsure one (null or under the threshold) a
//! valid "no opinion" (its credits are spent).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    #[error("the model's reply is not a JSON object")]
    NotJson,
    #[error("the model's reply lacks {0}")]
    Missing(&'static str),
    #[error("the model chose {0}, which is not an index of the list of {1}")]
    OutOfRange(String, usize),
}

/// One choice and the model's confidence in it (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub index: usize,
    pub confidence: f64,
}

fn object(content: &str) -> Result<serde_json::Map<String, Value>, ReplyError> {
    match serde_json::from_str(content.trim()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ReplyError::NotJson),
    }
}

fn index(value: &Value, choices: usize) -> Result<usize, ReplyError> {
    value
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .filter(|i| *i < choices)
        .ok_or_else(|| ReplyError::OutOfRange(value.to_string(), choices))
}

/// A confidence outside 0..=1 (or missing) counts as none.
fn confidence(value: Option<&Value>) -> f64 {
    value
        .and_then(Value::as_f64)
        .filter(|c| (0.0..=1.0).contains(c))
        .unwrap_or(0.0)
}

/// `{"category_index": <n|null>, "confidence": <0..1>}` → the chosen category, if confident.
pub fn read_category(content: &str, choices: usize, min_confidence: f64) -> Result<Option<Choice>, ReplyError> {
    let reply = object(content)?;
    let choice = match reply.get("category_index") {
        None => return Err(ReplyError::Missing("category_index")),
        Some(Value::Null) => return Ok(None),
        Some(v) => Choice {
            index: index(v, choices)?,
            confidence: confidence(reply.get("confidence")),
        },
    };
    Ok((choice.confidence >= min_confidence).then_some(choice))
}

/// `{"tags": [{"index": <n>, "confidence": <0..1>}, …]}` → the confident tags, best first, each
/// once, at most `max`.
pub fn read_tags(content: &str, choices: usize, min_confidence: f64, max: usize) -> Result<Vec<Choice>, ReplyError> {
    let reply = object(content)?;
    let items = match reply.get("tags") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) => return Ok(vec![]),
        _ => return Err(ReplyError::Missing("tags")),
    };
    let mut picked: Vec<Choice> = Vec::new();
    for item in items {
        let choice = Choice {
            index: index(item.get("index").unwrap_or(&Value::Null), choices)?,
            confidence: confidence(item.get("confidence")),
        };
        if choice.confidence >= min_confidence && !picked.iter().any(|p| p.index == choice.index) {
            picked.push(choice);
        }
    }
    picked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    picked.truncate(max);
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize, confidence: f64) -> Choice {
        Choice { index, confidence }
    }

    #[test]
    fn category_replies() {
        let out_of_range = |v: &str| Err(ReplyError::OutOfRange(v.into(), 3));
        let cases: [(&str, Result<Option<Choice>, ReplyError>); 11] = [
            (r#"{"category_index": 1, "confidence": 0.9}"#, Ok(Some(c(1, 0.9)))),
            (r#" {"category_index": 0, "confidence": 0.7} "#, Ok(Some(c(0, 0.7)))),
            (r#"{"category_index": 2, "confidence": 0.5}"#, Ok(None)),
            (r#"{"category_index": 2}"#, Ok(None)),
            (r#"{"category_index": 2, "confidence": 7}"#, Ok(None)),
            (r#"{"category_index": null, "confidence": 0.99}"#, Ok(None)),
            (r#"{"category_index": 3, "confidence": 0.9}"#, out_of_range("3")),
            (r#"{"category_index": -1, "confidence": 0.9}"#, out_of_range("-1")),
            (r#"{"category_index": "1", "confidence": 0.9}"#, out_of_range("\"1\"")),
            (r#"{"confidence": 0.9}"#, Err(ReplyError::Missing("category_index"))),
            ("the category is Food", Err(ReplyError::NotJson)),
        ];
        for (reply, expected) in cases {
            assert_eq!(read_category(reply, 3, 0.7), expected, "{reply}");
        }
    }

    #[test]
    fn tag_replies() {
        let cases: [(&str, Result<Vec<Choice>, ReplyError>); 8] = [
            (
                r#"{"tags": [{"index": 0, "confidence": 0.8}, {"index": 2, "confidence": 0.95}]}"#,
                Ok(vec![c(2, 0.95), c(0, 0.8)]),
            ),
            (
                r#"{"tags": [{"index": 1, "confidence": 0.8}, {"index": 1, "confidence": 0.9}]}"#,
                Ok(vec![c(1, 0.8)]),
            ),
            (r#"{"tags": [{"index": 1, "confidence": 0.2}]}"#, Ok(vec![])),
            (r#"{"tags": []}"#, Ok(vec![])),
            (r#"{"tags": null}"#, Ok(vec![])),
            (
                r#"{"tags": [{"index": 0, "confidence": 0.9}, {"index": 9, "confidence": 0.9}]}"#,
                Err(ReplyError::OutOfRange("9".into(), 3)),
            ),
            (r#"{"category_index": 0}"#, Err(ReplyError::Missing("tags"))),
            ("[1, 2]", Err(ReplyError::NotJson)),
        ];
        for (reply, expected) in cases {
            assert_eq!(read_tags(reply, 3, 0.7, 5), expected, "{reply}");
        }
        let many = r#"{"tags": [{"index": 0, "confidence": 0.8}, {"index": 1, "confidence": 0.9}, {"index": 2, "confidence": 0.85}]}"#;
        assert_eq!(read_tags(many, 3, 0.7, 2), Ok(vec![c(1, 0.9), c(2, 0.85)]));
    }
}
