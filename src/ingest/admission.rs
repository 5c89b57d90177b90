//! Admission control: a memory budget for requests in flight, and a per-tenant ingestion rate.
//! Both refuse with a retry hint rather than queue: a bounded service answers "later" instead of
//! growing until it falls over.

use crate::error::{ErrorCode, ServiceError};
use crate::model::TenantId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(
        "weft is at its in-flight limit of {limit} bytes (limits.max_inflight_bytes): a request \
         of {asked} bytes does not fit now; retry later"
    )]
    Overloaded { limit: usize, asked: usize },
    #[error(
        "this request needs {asked} bytes of memory once decoded, over the {limit} one request \
         may hold (limits.max_request_memory_bytes); send fewer or smaller records per request"
    )]
    TooLarge { limit: usize, asked: usize },
    #[error(
        "tenant {tenant} is over its ingestion rate of {rate} records/s \
         (limits.tenant_records_per_sec): {asked} records sent; retry in {wait_ms} ms"
    )]
    RateLimited {
        tenant: String,
        rate: u64,
        asked: u64,
        wait_ms: u64,
    },
}

impl ServiceError for AdmissionError {
    fn code(&self) -> ErrorCode {
        match self {
            AdmissionError::Overloaded { .. } => ErrorCode::Overloaded,
            AdmissionError::RateLimited { .. } => ErrorCode::RateLimited,
            AdmissionError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AdmissionError::Overloaded { .. } => Some(Duration::from_secs(1)),
            AdmissionError::RateLimited { wait_ms, .. } => Some(Duration::from_millis(*wait_ms)),
            // Retrying the same request cannot help.
            AdmissionError::TooLarge { .. } => None,
        }
    }
}

impl AdmissionError {
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::Overloaded { .. } => "overloaded",
            AdmissionError::RateLimited { .. } => "rate_limited",
            AdmissionError::TooLarge { .. } => "too_large",
        }
    }
}

/// Memory held by one request; returned to the budget when dropped.
pub struct Charge(Option<OwnedSemaphorePermit>);

impl Charge {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Admission {
    budget: Arc<Semaphore>,
    limit: usize,
    /// What one request may hold: a few requests can never take the whole budget between
    /// them, and one that could never fit is told so (413) instead of to retry (429).
    per_request: usize,
    rate: u64,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl Admission {
    pub fn new(
        max_inflight_bytes: usize,
        max_request_bytes: usize,
        tenant_records_per_sec: u64,
    ) -> Self {
        let limit = max_inflight_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(limit)),
            limit,
            per_request: max_request_bytes.min(limit),
            rate: tenant_records_per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn empty_charge() -> Charge {
        Charge(None)
    }

    /// Adds `bytes` to what `charge` holds, or refuses without waiting: `TooLarge` when the
    /// request would hold more than one request may, `Overloaded` when the budget is full now.
    pub fn grow(&self, charge: &mut Charge, bytes: usize) -> Result<(), AdmissionError> {
        if bytes == 0 {
            return Ok(());
        }
        let total = charge.bytes().saturating_add(bytes);
        if total > self.per_request {
            return Err(AdmissionError::TooLarge {
                limit: self.per_request,
                asked: total,
            });
        }
        let refused = || AdmissionError::Overloaded {
            limit: self.limit,
            asked: bytes,
        };
        let n = u32::try_from(bytes).map_err(|_| refused())?;
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| refused())?;
        match &mut charge.0 {
            Some(held) => held.merge(permit),
            None => charge.0 = Some(permit),
        }
        Ok(())
    }

    /// Bytes in flight now.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.limit - self.budget.available_permits()
    }

    /// Takes `records` from the tenant's token bucket (one second of burst).
    pub fn take_records(&self, tenant: &TenantId, records: u64) -> Result<(), AdmissionError> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = self.rate as f64;
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        // A request larger than one second's worth passes when the bucket is full, and leaves
        // it in debt: large batches are slowed, never starved.
        let needed = (records as f64).min(rate);
        if b.tokens >= needed {
            b.tokens -= records as f64;
            return Ok(());
        }
        let wait = (needed - b.tokens) / rate;
        Err(AdmissionError::RateLimited {
            tenant: tenant.to_string(),
            rate: self.rate,
            asked: records,
            wait_ms: (wait * 1000.0).ceil() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_the_limit_and_frees_on_drop() {
        let a = Admission::new(1000, 1000, 0);
        let mut first = Admission::empty_charge();
        a.grow(&mut first, 600).unwrap();
        a.grow(&mut first, 300).unwrap();
        assert_eq!(a.in_flight(), 900);
        let mut second = Admission::empty_charge();
        let err = a.grow(&mut second, 200).unwrap_err();
        assert!(err.to_string().contains("1000 bytes"), "{err}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        drop(first);
        assert_eq!(a.in_flight(), 0);
        a.grow(&mut second, 200).unwrap();
        assert_eq!(second.bytes(), 200);
    }

    #[test]
    fn a_request_past_its_share_is_too_large_not_overloaded() {
        let a = Admission::new(1000, 400, 0);
        let mut one = Admission::empty_charge();
        a.grow(&mut one, 300).unwrap();
        let err = a.grow(&mut one, 200).unwrap_err();
        assert!(
            matches!(
                err,
                AdmissionError::TooLarge {
                    limit: 400,
                    asked: 500
                }
            ),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(err.retry_after(), None);
        // The refused growth took nothing.
        assert_eq!(a.in_flight(), 300);
    }

    #[test]
    fn tenant_rate_is_a_token_bucket() {
        let a = Admission::new(1000, 1000, 100);
        let t = TenantId::new("acme").unwrap();
        let other = TenantId::new("globex").unwrap();
        a.take_records(&t, 60).unwrap();
        a.take_records(&t, 40).unwrap();
        let err = a.take_records(&t, 50).unwrap_err();
        let AdmissionError::RateLimited { wait_ms, .. } = err else {
            panic!("{err}")
        };
        assert!(wait_ms > 0 && wait_ms <= 500, "{wait_ms}");
        // Another tenant has its own bucket.
        a.take_records(&other, 100).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        a.take_records(&t, 50).unwrap();
    }
}
