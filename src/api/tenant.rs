//! Which tenant a request belongs to: the `X-Scope-OrgID` header (HTTP) or metadata key
//! (gRPC), as Grafana's backends use it; `default` when absent.

use crate::error::{ErrorCode, ServiceError};
use crate::model::{TenantError, TenantId};

pub const TENANT_HEADER: &str = "x-scope-orgid";

#[derive(Debug, thiserror::Error)]
#[error("{TENANT_HEADER}: {0}")]
pub struct BadTenant(#[from] TenantError);

impl ServiceError for BadTenant {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

pub fn from_header(value: Option<&[u8]>) -> Result<TenantId, BadTenant> {
    match value {
        None => Ok(TenantId::default()),
        Some(raw) => {
            let s = std::str::from_utf8(raw)
                .map_err(|_| TenantError::Characters(String::from_utf8_lossy(raw).into_owned()))?;
            Ok(TenantId::new(s.trim())?)
        }
    }
}

pub fn from_http(req: &actix_web::HttpRequest) -> Result<TenantId, BadTenant> {
    from_header(req.headers().get(TENANT_HEADER).map(|v| v.as_bytes()))
}

pub fn from_grpc(meta: &tonic::metadata::MetadataMap) -> Result<TenantId, BadTenant> {
    from_header(meta.get(TENANT_HEADER).map(|v| v.as_bytes()))
}
