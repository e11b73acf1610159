//! Numbers that may come from `${ENV}` expansion: an integer, or a string holding one.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(u64),
    String(String),
}

fn to_u32<E: serde::de::Error>(raw: IntOrString) -> Result<u32, E> {
    let value = match raw {
        IntOrString::Int(n) => n,
        IntOrString::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| E::custom(format!("expected a non-negative integer, got {s:?}")))?,
    };
    u32::try_from(value)
        .map_err(|_| E::custom(format!("expected at most {}, got {value}", u32::MAX)))
}

/// `port: 5432` or `port: "${PORT}"`.
pub(crate) fn u32_field<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    to_u32(IntOrString::deserialize(d)?)
}

/// Optional variant of [`u32_field`].
pub(crate) fn opt_u32_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<IntOrString>::deserialize(d)?
        .map(to_u32)
        .transpose()
}
