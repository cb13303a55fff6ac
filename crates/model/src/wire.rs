//! Lenient decoders for values that ShenYu admins and hand-written files spell in more than one way.

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// `handle` travels as a JSON string inside JSON; hand-written files may give the object itself.
pub fn handle_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Plugin `config` is a JSON string on the wire; files may give a map.
pub fn json_string_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    handle_de(d)
}

/// Numbers that arrive as numbers, numeric strings or (for matchMode) words.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

pub fn match_mode_de<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i as i32),
        NumOrStr::Float(f) => Ok(f as i32),
        NumOrStr::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "and" => Ok(0),
            "or" => Ok(1),
            other => other.parse::<i32>().map_err(|_| {
                de::Error::custom(format!("matchMode must be 0 (and), 1 (or), \"and\" or \"or\", got {s:?}"))
            }),
        },
        NumOrStr::Bool(_) => Err(de::Error::custom("matchMode must be a number or \"and\"/\"or\"")),
    }
}

pub fn selector_type_de<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i as i32),
        NumOrStr::Float(f) => Ok(f as i32),
        NumOrStr::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "full" | "full_flow" => Ok(0),
            "custom" | "custom_flow" => Ok(1),
            other => other.parse::<i32>().map_err(|_| {
                de::Error::custom(format!("type must be 0 (full), 1 (custom), \"full\" or \"custom\", got {s:?}"))
            }),
        },
        NumOrStr::Bool(_) => Err(de::Error::custom("type must be a number or \"full\"/\"custom\"")),
    }
}

/// Java handles carry numbers as strings now and then (`"retry":"3"`).
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Int(i)) if i >= 0 => Ok(Some(i as u64)),
        Some(NumOrStr::Int(i)) => Err(de::Error::custom(format!("expected a non-negative number, got {i}"))),
        Some(NumOrStr::Float(f)) if f >= 0.0 => Ok(Some(f as u64)),
        Some(NumOrStr::Float(f)) => Err(de::Error::custom(format!("expected a non-negative number, got {f}"))),
        Some(NumOrStr::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(NumOrStr::Str(s)) => {
            s.trim().parse::<u64>().map(Some).map_err(|_| de::Error::custom(format!("expected a number, got {s:?}")))
        }
        Some(NumOrStr::Bool(b)) => Err(de::Error::custom(format!("expected a number, got {b}"))),
    }
}

pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Int(i)) => Ok(Some(i)),
        Some(NumOrStr::Float(f)) => Ok(Some(f as i64)),
        Some(NumOrStr::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(NumOrStr::Str(s)) => {
            s.trim().parse::<i64>().map(Some).map_err(|_| de::Error::custom(format!("expected a number, got {s:?}")))
        }
        Some(NumOrStr::Bool(b)) => Err(de::Error::custom(format!("expected a number, got {b}"))),
    }
}

pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Bool(b)) => Ok(Some(b)),
        Some(NumOrStr::Int(i)) => Ok(Some(i != 0)),
        Some(NumOrStr::Float(f)) => Ok(Some(f != 0.0)),
        Some(NumOrStr::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" | "" => Ok(Some(false)),
            _ => Err(de::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
    }
}
