//! Naming a stream by `StreamName` or `StreamARN` (`arn:aws:kinesis:<region>:<account>:stream/<name>`).

use super::config::HttpConfig;
use super::error::ApiError;
use super::fields::Fields;
use super::validate;

/// The ARN of stream `name` on this server.
pub(crate) fn stream_arn(config: &HttpConfig, name: &str) -> String {
    format!(
        "arn:aws:kinesis:{}:{}:stream/{name}",
        config.region, config.account
    )
}

/// The stream a request names, by `StreamName` or `StreamARN`; when both are given they must
/// agree.
pub(crate) fn required_stream(fields: &Fields<'_>) -> Result<String, ApiError> {
    optional_stream(fields)?.ok_or_else(|| fields.missing("StreamName"))
}

/// Like [`required_stream`], for actions where the stream may be named another way.
pub(crate) fn optional_stream(fields: &Fields<'_>) -> Result<Option<String>, ApiError> {
    let by_name = fields.string("StreamName")?;
    if let Some(name) = by_name {
        validate::name(&fields.name("StreamName"), name)?;
    }
    let by_arn = match fields.string("StreamARN")? {
        Some(arn) => Some(stream_name_of_arn(&fields.name("StreamARN"), arn)?),
        None => None,
    };
    match (by_name, by_arn) {
        (Some(name), Some(from_arn)) if name != from_arn => Err(ApiError::invalid_argument(
            format!("StreamName {name} and StreamARN (stream {from_arn}) name different streams"),
        )),
        (Some(name), _) => Ok(Some(name.to_owned())),
        (None, from_arn) => Ok(from_arn),
    }
}

/// The stream name in a stream ARN. Any region and account are accepted: one server is one
/// account, whatever region the client was configured with.
fn stream_name_of_arn(field: &str, arn: &str) -> Result<String, ApiError> {
    validate::length(field, arn, 1, 2048)?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let name = match parts.as_slice() {
        ["arn", partition, "kinesis", _region, account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            resource.strip_prefix("stream/")
        }
        _ => None,
    };
    let Some(name) = name else {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value {} at '{field}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: \
             arn:aws.*:kinesis:.*:\\d{{12}}:stream/\\S+",
            validate::describe_value(arn)
        )));
    };
    validate::name(field, name)?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(request: serde_json::Value) -> Result<Option<String>, ApiError> {
        let map = request.as_object().cloned().unwrap_or_default();
        optional_stream(&Fields::new(&map, ""))
    }

    #[test]
    fn a_stream_is_named_by_name_or_arn() {
        let arn = stream_arn(&HttpConfig::default(), "orders");
        assert_eq!(arn, "arn:aws:kinesis:us-east-1:000000000000:stream/orders");
        assert_eq!(
            stream(json!({"StreamName": "orders"})),
            Ok(Some("orders".into()))
        );
        assert_eq!(stream(json!({"StreamARN": arn})), Ok(Some("orders".into())));
        assert_eq!(
            stream(json!({"StreamName": "orders", "StreamARN": arn})),
            Ok(Some("orders".into()))
        );
        assert_eq!(
            stream(json!({"StreamName": "other", "StreamARN": arn})).map_err(|e| e.kind),
            Err("InvalidArgumentException")
        );
        assert_eq!(
            stream(json!({"StreamARN": "arn:aws:s3:::bucket"})).map_err(|e| e.kind),
            Err("ValidationException")
        );
        assert_eq!(stream(json!({})), Ok(None));
    }
}
