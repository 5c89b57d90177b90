//! Identifier newtypes. Every ID is normalised on the way in so that one trace has exactly one
//! spelling everywhere: lowercase hex, fixed width.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Why a string or byte slice is not an ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        what: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("{what} must not be all zeroes")]
    Zero { what: &'static str },
    #[error("{what} is not hexadecimal: {value:?}")]
    NotHex { what: &'static str, value: String },
    #[error("{what} is not a decimal 64-bit number: {value:?}")]
    NotDecimal { what: &'static str, value: String },
}

/// Parse hex of any case into exactly `N` bytes, left-padding shorter IDs with zeroes
/// (64-bit B3 and Jaeger trace IDs are the low half of a 128-bit ID).
fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let s = s.trim();
    if s.is_empty() || s.len() > N * 2 {
        return Err(IdError::Length {
            what,
            expected: if N == 16 {
                "16 (32 hex digits)"
            } else {
                "8 (16 hex digits)"
            },
            got: s.len().div_ceil(2),
        });
    }
    let mut padded = String::with_capacity(N * 2);
    for _ in s.len()..N * 2 {
        padded.push('0');
    }
    padded.push_str(s);
    let mut out = [0u8; N];
    hex::decode_to_slice(&padded, &mut out).map_err(|_| IdError::NotHex {
        what,
        value: s.chars().take(64).collect(),
    })?;
    Ok(out)
}

fn from_slice<const N: usize>(what: &'static str, b: &[u8]) -> Result<[u8; N], IdError> {
    let arr: [u8; N] = b.try_into().map_err(|_| IdError::Length {
        what,
        expected: if N == 16 { "16" } else { "8" },
        got: b.len(),
    })?;
    if arr.iter().all(|&x| x == 0) {
        return Err(IdError::Zero { what });
    }
    Ok(arr)
}

macro_rules! id_type {
    ($name:ident, $n:literal, $what:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// From the raw bytes of OTLP protobuf: exactly the right length, not all zero.
            pub fn from_bytes(b: &[u8]) -> Result<Self, IdError> {
                from_slice::<$n>($what, b).map(Self)
            }

            /// From hex in either case; shorter IDs are left-padded with zeroes.
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                let arr = parse_hex::<$n>($what, s)?;
                from_slice::<$n>($what, &arr).map(Self)
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        /// Hex for people (JSON), raw bytes for the WAL (compact binary formats).
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    <[u8; $n]>::deserialize(d).map(Self)
                }
            }
        }
    };
}

id_type!(TraceId, 16, "trace id");
id_type!(SpanId, 8, "span id");

impl TraceId {
    /// A Datadog trace ID: an unsigned 64-bit decimal, the low half of the 128-bit ID.
    pub fn from_decimal(s: &str) -> Result<Self, IdError> {
        let n: u64 = s.trim().parse().map_err(|_| IdError::NotDecimal {
            what: "trace id",
            value: s.chars().take(64).collect(),
        })?;
        let mut arr = [0u8; 16];
        arr[8..].copy_from_slice(&n.to_be_bytes());
        Self::from_bytes(&arr)
    }
}

/// The tenant that owns a record. Validated once at the edge so that it can be used in
/// index terms and directory-free contexts without escaping.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantId(String);

pub const DEFAULT_TENANT: &str = "default";
pub const MAX_TENANT_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant id must be 1 to {MAX_TENANT_LEN} characters, got {0}")]
    Length(usize),
    #[error("tenant id may only contain ASCII letters, digits, '-', '_' and '.', got {0:?}")]
    Characters(String),
}

impl TenantId {
    pub fn new(s: &str) -> Result<Self, TenantError> {
        if s.is_empty() || s.len() > MAX_TENANT_LEN {
            return Err(TenantError::Length(s.len()));
        }
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        // "." and ".." are path tricks even though every character is allowed.
        if !ok_chars || s.chars().all(|c| c == '.') {
            return Err(TenantError::Characters(
                s.chars().take(MAX_TENANT_LEN).collect(),
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_normalises_case_and_width() {
        let a = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(a.to_hex(), "5b8efff798038103d269b633813fc60c");
        let short = TraceId::from_hex("d269b633813fc60c").unwrap();
        assert_eq!(short.to_hex(), "0000000000000000d269b633813fc60c");
    }

    #[test]
    fn trace_id_rejects_bad_input() {
        assert!(matches!(
            TraceId::from_bytes(&[1u8; 15]),
            Err(IdError::Length { got: 15, .. })
        ));
        assert!(matches!(
            TraceId::from_bytes(&[0u8; 16]),
            Err(IdError::Zero { .. })
        ));
        assert!(matches!(
            TraceId::from_hex("zz"),
            Err(IdError::NotHex { .. })
        ));
        assert!(TraceId::from_hex(&"a".repeat(33)).is_err());
    }

    #[test]
    fn datadog_decimal_is_low_half() {
        let t = TraceId::from_decimal("1234567890123456789").unwrap();
        assert_eq!(
            t.to_hex(),
            format!("0000000000000000{:016x}", 1234567890123456789u64)
        );
        assert!(TraceId::from_decimal("0").is_err());
        assert!(TraceId::from_decimal("99999999999999999999999").is_err());
    }

    #[test]
    fn tenant_validation() {
        assert!(TenantId::new("acme-prod_1.eu").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("..").is_err());
        assert!(TenantId::new("a/b").is_err());
        assert!(TenantId::new(&"x".repeat(129)).is_err());
    }

    #[test]
    fn ids_roundtrip_through_json_and_postcard() {
        let t = TraceId::from_hex("5b8efff798038103d269b633813fc60c").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"5b8efff798038103d269b633813fc60c\"");
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), t);
        let bin = postcard::to_allocvec(&t).unwrap();
        assert_eq!(bin.len(), 16);
        assert_eq!(postcard::from_bytes::<TraceId>(&bin).unwrap(), t);
    }
}
