//! Stream tags: AddTagsToStream, ListTagsForStream, RemoveTagsFromStream.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Api, Reply};
use crate::http::arn::required_stream;
use crate::http::error::ApiError;
use crate::http::fields::{Fields, list_string};
use crate::http::validate;

/// The most tags a stream may carry, as Kinesis.
const MAX_TAGS_PER_STREAM: usize = 50;

impl Api {
    pub(super) async fn add_tags(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let tags = fields
            .object("Tags")?
            .ok_or_else(|| fields.missing("Tags"))?;
        let added = validated_tags(tags, MAX_TAGS_PER_STREAM)?;
        self.blocking(move |engine| {
            let mut tags = engine.describe_stream(&stream)?.tags;
            tags.extend(added);
            if tags.len() > MAX_TAGS_PER_STREAM {
                return Err(crate::Error::InvalidArgument {
                    field: "Tags",
                    message: format!(
                        "stream {stream} would have {} tags; a stream can have at most \
                         {MAX_TAGS_PER_STREAM}",
                        tags.len()
                    ),
                });
            }
            engine.set_tags(&stream, tags)
        })
        .await?;
        Ok(None)
    }

    pub(super) async fn remove_tags(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let keys = fields
            .list("TagKeys")?
            .ok_or_else(|| fields.missing("TagKeys"))?;
        validate::count("TagKeys", keys.len(), 1, 50)?;
        let mut removed = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let key = list_string("TagKeys", index, key)?;
            validate::length(&format!("TagKeys.{}", index + 1), key, 1, 128)?;
            check_tag_characters(key)?;
            removed.push(key.to_owned());
        }
        self.blocking(move |engine| {
            let mut tags = engine.describe_stream(&stream)?.tags;
            for key in &removed {
                tags.remove(key);
            }
            engine.set_tags(&stream, tags)
        })
        .await?;
        Ok(None)
    }

    pub(super) async fn list_tags(&self, fields: Fields<'_>) -> Result<Reply, ApiError> {
        let stream = required_stream(&fields)?;
        let limit = fields.integer("Limit")?.unwrap_or(50);
        validate::range("Limit", limit, 1, 50)?;
        let start = fields.string("ExclusiveStartTagKey")?;
        if let Some(start) = start {
            validate::length("ExclusiveStartTagKey", start, 1, 128)?;
        }
        let start = start.map(str::to_owned);
        let tags = self
            .blocking(move |engine| Ok(engine.describe_stream(&stream)?.tags))
            .await?;
        let remaining: Vec<(String, String)> = tags
            .into_iter()
            .filter(|(key, _)| start.as_ref().is_none_or(|start| key > start))
            .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let page: Vec<Value> = remaining
            .iter()
            .take(limit)
            .map(|(key, value)| json!({ "Key": key, "Value": value }))
            .collect();
        Ok(Some(json!({
            "Tags": page,
            "HasMoreTags": remaining.len() > limit,
        })))
    }
}

/// Checks a `Tags` map: `1..=max` tags, keys of 1–128 and values of 0–256 characters, of the
/// characters Kinesis allows.
pub(super) fn validated_tags(
    tags: &Map<String, Value>,
    max: usize,
) -> Result<BTreeMap<String, String>, ApiError> {
    validate::count("Tags", tags.len(), 1, max)?;
    let mut checked = BTreeMap::new();
    for (key, value) in tags {
        // A key of any length may arrive; messages repeat only its start.
        let field = format!("Tags.{}", validate::cut_short(key));
        let Value::String(value) = value else {
            return Err(ApiError::serialization(format!("{field} must be a string")));
        };
        validate::length("Tags", key, 1, 128)?;
        validate::length(&field, value, 0, 256)?;
        check_tag_characters(key)?;
        check_tag_characters(value)?;
        checked.insert(key.clone(), value.clone());
    }
    Ok(checked)
}

fn check_tag_characters(text: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_./=+-@".contains(c);
    if text.chars().all(allowed) {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "tag {} contains invalid characters; valid characters are Unicode letters, digits, \
             white space, _ . / = + - @",
            validate::describe_value(text)
        )))
    }
}
