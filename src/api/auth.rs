//! Who is asking: the tenant of a request and, when auth is enabled, the bearer token that
//! vouches for it. The tenant comes from the `X-Scope-OrgID` header (gRPC metadata
//! `x-scope-orgid`), as Grafana's backends use it, or from the token; `default` when neither
//! names one. Tokens are configured as SHA-256 hashes, never in clear.

use crate::config::AuthConfig;
use crate::error::{ErrorCode, ServiceError};
use crate::model::{TenantError, TenantId};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const TENANT_HEADER: &str = "x-scope-orgid";
pub const AUTHORIZATION: &str = "authorization";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("unknown bearer token")]
    Unknown,
    #[error("this token may not access tenant {0:?}")]
    Forbidden(String),
    #[error("{TENANT_HEADER}: {0}")]
    BadTenant(#[from] TenantError),
    #[error("header {0} is given more than once; send it once")]
    Repeated(&'static str),
}

impl ServiceError for AuthError {
    fn code(&self) -> ErrorCode {
        match self {
            AuthError::Missing | AuthError::Unknown => ErrorCode::Unauthenticated,
            AuthError::Forbidden(_) => ErrorCode::PermissionDenied,
            AuthError::BadTenant(_) | AuthError::Repeated(_) => ErrorCode::InvalidArgument,
        }
    }
}

/// The SHA-256 of a token, in hex: what the config stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct Auth {
    enabled: bool,
    /// Token hash → its tenant.
    tokens: HashMap<String, TenantId>,
}

impl Auth {
    /// From validated settings (hashes are 64 hex digits, tenants valid).
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            enabled: config.enabled,
            tokens: config
                .tokens
                .iter()
                .filter_map(|t| {
                    Some((
                        t.sha256.to_ascii_lowercase(),
                        TenantId::new(&t.tenant).ok()?,
                    ))
                })
                .collect(),
        }
    }

    fn tenant_header(value: Option<&[u8]>) -> Result<Option<TenantId>, AuthError> {
        let Some(raw) = value else { return Ok(None) };
        let s = std::str::from_utf8(raw)
            .map_err(|_| TenantError::Characters(String::from_utf8_lossy(raw).into_owned()))?;
        Ok(Some(TenantId::new(s.trim())?))
    }

    /// The tenant a request may act as, from its `Authorization` and tenant headers.
    pub fn resolve(
        &self,
        authorization: Option<&[u8]>,
        tenant: Option<&[u8]>,
    ) -> Result<TenantId, AuthError> {
        if !self.enabled {
            return Ok(Self::tenant_header(tenant)?.unwrap_or_default());
        }
        let token = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let owner = self
            .tokens
            .get(&hash_token(token))
            .ok_or(AuthError::Unknown)?;
        match Self::tenant_header(tenant)? {
            Some(asked) if &asked != owner => Err(AuthError::Forbidden(asked.to_string())),
            _ => Ok(owner.clone()),
        }
    }

    pub fn from_http(&self, req: &actix_web::HttpRequest) -> Result<TenantId, AuthError> {
        let h = |name| single(req.headers().get_all(name).map(|v| v.as_bytes()), name);
        self.resolve(h(AUTHORIZATION)?, h(TENANT_HEADER)?)
    }

    pub fn from_grpc(&self, meta: &tonic::metadata::MetadataMap) -> Result<TenantId, AuthError> {
        let m = |name| single(meta.get_all(name).iter().map(|v| v.as_bytes()), name);
        self.resolve(m(AUTHORIZATION)?, m(TENANT_HEADER)?)
    }
}

/// The tenant of a query API request, as a handler argument: a request without a valid one is
/// refused before the handler runs. (The ingest and compatibility handlers answer in their
/// protocols' own error shapes, so they call `Auth::from_http` themselves.)
pub struct Tenant(pub TenantId);

impl actix_web::FromRequest for Tenant {
    type Error = super::errors::ApiError;
    type Future = std::future::Ready<Result<Tenant, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let tenant = match req.app_data::<actix_web::web::Data<super::AppState>>() {
            Some(state) => state.auth.from_http(req).map(Tenant).map_err(Into::into),
            None => Err(super::errors::ApiError::new(
                crate::error::ErrorCode::Internal,
                "the app has no state",
            )),
        };
        std::future::ready(tenant)
    }
}

/// The one value of a header: two tenants (or two tokens) in one request is ambiguous, and
/// silently taking the first would let a proxy's header and a client's disagree unnoticed.
fn single<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
    name: &'static str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let first = values.next();
    match values.next() {
        None => Ok(first),
        Some(_) => Err(AuthError::Repeated(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn auth(enabled: bool) -> Auth {
        Auth::new(&AuthConfig {
            enabled,
            tokens: vec![TokenConfig {
                tenant: "acme".into(),
                sha256: hash_token("s3cret"),
            }],
        })
    }

    #[test]
    fn without_auth_the_header_names_the_tenant() {
        let a = auth(false);
        assert_eq!(a.resolve(None, None).unwrap().as_str(), "default");
        assert_eq!(a.resolve(None, Some(b"globex")).unwrap().as_str(), "globex");
        assert!(matches!(
            a.resolve(None, Some(b"../x")),
            Err(AuthError::BadTenant(_))
        ));
    }

    #[test]
    fn with_auth_the_token_decides() {
        let a = auth(true);
        assert!(matches!(a.resolve(None, None), Err(AuthError::Missing)));
        assert!(matches!(
            a.resolve(Some(b"Basic abc"), None),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            a.resolve(Some(b"Bearer nope"), None),
            Err(AuthError::Unknown)
        ));
        assert_eq!(
            a.resolve(Some(b"Bearer s3cret"), None).unwrap().as_str(),
            "acme"
        );
        assert_eq!(
            a.resolve(Some(b"bearer  s3cret "), Some(b"acme"))
                .unwrap()
                .as_str(),
            "acme"
        );
        let err = a
            .resolve(Some(b"Bearer s3cret"), Some(b"globex"))
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        assert!(
            !err.to_string().contains("acme"),
            "never names the token's own tenant"
        );
    }
}
