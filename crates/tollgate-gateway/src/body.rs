//! A JSON request body read once, its top-level members kept as raw slices of the request: the hot
//! path reads the few members governance needs and writes the body back without building a tree.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// The members of a JSON object, in order, each value still as its JSON text.
#[derive(Debug, Clone)]
pub(crate) struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Reads a request body. Malformed JSON is a 400; a body that is valid JSON but not an object
    /// has no members (so the route reports the first member it misses).
    pub fn parse(bytes: &'a [u8]) -> Result<RawObject<'a>, GatewayError> {
        let text = std::str::from_utf8(bytes).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
        // One pass for the usual case, an object; only a failure is looked at again, to tell
        // malformed JSON from JSON that is not an object.
        if let Ok(members) = serde_json::from_str::<Members<'a>>(text) {
            return Ok(RawObject { members: members.0 });
        }
        serde_json::from_str::<&RawValue>(text).map_err(|e| GatewayError::bad_request(format!("malformed JSON: {e}")))?;
        Ok(RawObject { members: Vec::new() })
    }

    /// The members of `value` when it is an object; none otherwise.
    pub fn of(value: &'a RawValue) -> RawObject<'a> {
        let members = serde_json::from_str::<Members<'a>>(value.get()).map(|m| m.0).unwrap_or_default();
        RawObject { members }
    }

    /// A member's JSON text; with a key given twice, the last one counts (as in a parsed tree).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A member that is a string.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(key)?;
        serde_json::from_str::<Text<'a>>(raw.get()).ok().map(|t| t.0)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        serde_json::from_str(self.get(key)?.get()).ok()
    }

    /// A token limit the request may set: absent or `null` is `None`; anything but a whole
    /// number from 1 up is a 400 naming the member. Governance reserves by it, so a value it
    /// cannot read must not pass as if it were absent, and 0 (which OpenAI and Anthropic refuse;
    /// a server that accepts it decides what it means) must not be reserved as nothing.
    pub fn token_count(&self, key: &str) -> Result<Option<u64>, GatewayError> {
        self.positive(key, "a whole number of tokens (1 or more)")
    }

    /// A count the request may set: absent or `null` is `None`; anything but a whole number from
    /// 1 up is a 400 saying the member must be `expected`.
    pub fn positive(&self, key: &str, expected: &str) -> Result<Option<u64>, GatewayError> {
        match self.typed(key, expected)? {
            Some(0) => Err(GatewayError::bad_request(format!("{key} must be {expected}"))),
            read => Ok(read),
        }
    }

    /// A switch the request may set: absent or `null` is `None`; anything but `true` or `false`
    /// is a 400 naming the member.
    pub fn switch(&self, key: &str) -> Result<Option<bool>, GatewayError> {
        self.typed(key, "true or false")
    }

    /// A member of type `T`: absent or `null` is `None`; anything else that does not read as a
    /// `T` is a 400 saying the member must be `expected`.
    fn typed<T: serde::de::DeserializeOwned>(&self, key: &str, expected: &str) -> Result<Option<T>, GatewayError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => {
                serde_json::from_str(raw.get()).map(Some).map_err(|_| GatewayError::bad_request(format!("{key} must be {expected}")))
            }
        }
    }

    /// True when the member is a JSON array.
    pub fn is_array(&self, key: &str) -> bool {
        self.get(key).is_some_and(|raw| raw.get().starts_with('['))
    }

    /// The object written back as JSON, with `changes` applied: `(key, Some(json))` sets a member
    /// (replacing it where it was), `(key, None)` removes it. Duplicate keys are written once.
    pub fn encode(&self, changes: &[(&str, Option<&str>)]) -> Vec<u8> {
        let size = self.members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 64;
        let mut out = Vec::with_capacity(size);
        out.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Vec<u8>, key: &str, value: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (i, (key, value)) in self.members.iter().enumerate() {
            let later = self.members[i + 1..].iter().any(|(k, _)| k == key);
            if later || changes.iter().any(|(k, _)| k == key) {
                continue;
            }
            put(&mut out, key, value.get());
        }
        for (key, value) in changes {
            if let Some(value) = value {
                put(&mut out, key, value);
            }
        }
        out.push(b'}');
        out
    }
}

/// Members of an object, or an error for anything else.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> Visitor<'de> for Each {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((key.0, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Each)
    }
}

/// A JSON string, borrowed from the request when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The JSON text of each element of an array member (empty when it is not an array).
pub(crate) fn elements(raw: Option<&RawValue>) -> Vec<&RawValue> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn reparsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn members_are_read_without_a_tree_and_written_back_with_changes() {
        let body = br#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":7,"stream":true,"fallbacks":["a/b"]}"#;
        let object = RawObject::parse(body).unwrap();
        assert_eq!(object.str("model").as_deref(), Some("openai/gpt-4o"));
        assert_eq!(object.token_count("max_tokens").ok(), Some(Some(7)));
        assert_eq!(object.bool("stream"), Some(true));
        assert!(object.is_array("messages"));
        let out =
            object.encode(&[("model", Some("\"gpt-4o\"")), ("fallbacks", None), ("stream_options", Some(r#"{"include_usage":true}"#))]);
        assert_eq!(
            reparsed(&out),
            json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}})
        );
    }

    #[test]
    fn escaped_keys_and_duplicates_survive_as_a_parsed_tree_would_read_them() {
        let body = br#"{"mo\u0064el":"x/first","model":"x/second","a\nb":1}"#;
        let object = RawObject::parse(body).unwrap();
        assert_eq!(object.str("model").as_deref(), Some("x/second"), "the last duplicate wins");
        assert_eq!(reparsed(&object.encode(&[])), json!({"model":"x/second","a\nb":1}));
    }

    #[test]
    fn token_counts_and_switches_are_read_strictly_and_null_counts_as_absent() {
        let body = br#"{"a": 16, "b": null, "c": 1.5, "d": -1, "e": "16", "f": 1e3, "g": true, "h": "yes", "i": 1, "z": 0}"#;
        let object = RawObject::parse(body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(object.token_count("a").ok(), Some(Some(16)));
        assert_eq!(object.token_count("b").ok(), Some(None));
        assert_eq!(object.token_count("absent").ok(), Some(None));
        for bad in ["c", "d", "e", "f", "g", "z"] {
            let refused = object.token_count(bad).err().map(|e| (e.status().as_u16(), e.message));
            assert_eq!(refused, Some((400, format!("{bad} must be a whole number of tokens (1 or more)"))));
        }
        assert_eq!(object.switch("g").ok(), Some(Some(true)));
        assert_eq!(object.switch("b").ok(), Some(None));
        for bad in ["h", "i", "a"] {
            assert_eq!(object.switch(bad).err().map(|e| e.message), Some(format!("{bad} must be true or false")));
        }
    }

    #[test]
    fn malformed_json_is_refused_and_a_non_object_has_no_members() {
        assert!(RawObject::parse(b"{\"model\":").is_err());
        assert!(RawObject::parse(b"[1,2]").unwrap().get("model").is_none());
        assert!(RawObject::parse(br#"{"model":5}"#).unwrap().str("model").is_none());
    }
}
