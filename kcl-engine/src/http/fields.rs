//! Reading members of a JSON request: each getter names the member in its error, checks the
//! JSON type (SerializationException, as Kinesis answers a wrong type) and, for required
//! members, presence (ValidationException).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::validate::describe_value;

/// A JSON object of a request and where it sits in the request (`""` for the top level,
/// `Records.3.` inside a list), for naming members in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// The top-level object of a request body. An empty body counts as `{}`.
pub(crate) fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::serialization(format!(
            "the request body must be a JSON object, found {}",
            json_type(&other)
        ))),
        Err(error) => Err(ApiError::serialization(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

impl<'a> Fields<'a> {
    /// The members of `map`, found at `path` (empty, or ending with a dot).
    pub(crate) fn new(map: &'a Map<String, Value>, path: &'a str) -> Self {
        Fields { map, path }
    }

    /// The full name of member `name`, as messages show it.
    pub(crate) fn name(&self, name: &str) -> String {
        format!("{}{name}", self.path)
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|value| !value.is_null())
    }

    fn wrong_type(&self, name: &str, expected: &str, found: &Value) -> ApiError {
        ApiError::serialization(format!(
            "{} must be {expected}, found {}",
            self.name(name),
            json_type(found)
        ))
    }

    /// The error for a required member that is absent or null.
    pub(crate) fn missing(&self, name: &str) -> ApiError {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: \
             Member must not be null",
            self.name(name)
        ))
    }

    /// An optional string member.
    pub(crate) fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(name, "a string", other)),
        }
    }

    /// A required string member.
    pub(crate) fn required_string(&self, name: &str) -> Result<&'a str, ApiError> {
        self.string(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional integer member. A fractional number is truncated, as Kinesis does.
    pub(crate) fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(value) => Ok(Some(value)),
                None => match number.as_f64() {
                    Some(value) if value.is_finite() && value.abs() < 9.0e18 => {
                        Ok(Some(value.trunc() as i64))
                    }
                    _ => Err(ApiError::validation(format!(
                        "1 validation error detected: Value '{number}' at '{}' failed to \
                         satisfy constraint: Member must be an integer of at most 64 bits",
                        self.name(name)
                    ))),
                },
            },
            Some(other) => Err(self.wrong_type(name, "a number", other)),
        }
    }

    /// A required integer member.
    pub(crate) fn required_integer(&self, name: &str) -> Result<i64, ApiError> {
        self.integer(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional timestamp member: seconds since the epoch, possibly fractional.
    pub(crate) fn timestamp(&self, name: &str) -> Result<Option<SystemTime>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => {
                let seconds = number.as_f64().unwrap_or(f64::NAN);
                // Up to the year 9999; earlier than the epoch means the epoch.
                if !seconds.is_finite() || seconds > 253_402_300_799.0 {
                    return Err(ApiError::validation(format!(
                        "1 validation error detected: Value '{number}' at '{}' failed to \
                         satisfy constraint: Member must be a time in seconds since the epoch",
                        self.name(name)
                    )));
                }
                Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0))))
            }
            Some(other) => Err(self.wrong_type(name, "a number of seconds since the epoch", other)),
        }
    }

    /// An optional blob member: standard base64 with padding.
    pub(crate) fn blob(&self, name: &str) -> Result<Option<Bytes>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(|bytes| Some(Bytes::from(bytes)))
                .map_err(|error| {
                    ApiError::serialization(format!(
                        "{} is not valid base64 ({error}): {}",
                        self.name(name),
                        describe_value(text)
                    ))
                }),
            Some(other) => Err(self.wrong_type(name, "a base64 string", other)),
        }
    }

    /// A required blob member.
    pub(crate) fn required_blob(&self, name: &str) -> Result<Bytes, ApiError> {
        self.blob(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional list member.
    pub(crate) fn list(&self, name: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.wrong_type(name, "a list", other)),
        }
    }

    /// An optional object member (a structure or a map).
    pub(crate) fn object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(self.wrong_type(name, "an object", other)),
        }
    }

    /// An optional boolean member.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(self.wrong_type(name, "a boolean", other)),
        }
    }
}

/// The element `index` (0-based) of a list member named `list` is an object.
pub(crate) fn list_object<'a>(
    list: &str,
    index: usize,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, ApiError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::serialization(format!(
            "{list}.{} must be an object, found {}",
            index + 1,
            json_type(other)
        ))),
    }
}

/// The element `index` (0-based) of a list member named `list` is a string.
pub(crate) fn list_string<'a>(
    list: &str,
    index: usize,
    value: &'a Value,
) -> Result<&'a str, ApiError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(ApiError::serialization(format!(
            "{list}.{} must be a string, found {}",
            index + 1,
            json_type(other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
