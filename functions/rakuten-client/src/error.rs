//! Errors returned by [`crate::RakutenClient`].
//!
//! No variant ever carries the application id, access key or affiliate id:
//! units are credential-free labels, transport details come from
//! `reqwest::Error::without_url()`, and server-sent texts are scrubbed.

use bytes::Bytes;
use serde::Serialize;

/// A failed API call. `Debug` shows a malformed body's length, not its bytes.
#[derive(thiserror::Error)]
pub enum ApiError {
    /// A non-retryable status (4xx other than 429, or another non-200), or 429/5xx
    /// still failing when the attempts ran out.
    #[error(
        "{unit}: HTTP {status} after {attempts} attempt(s){}",
        describe(code, message)
    )]
    Http {
        /// What was requested, e.g. `ranking genreId=0 page=3`.
        unit: String,
        /// HTTP status of the last answer.
        status: u16,
        /// Error code from the body (`error`, `errors.errorCode` or `statusCode`).
        code: Option<String>,
        /// Error text from the body (`error_description`, `errors.errorMessage` or `message`).
        message: Option<String>,
        /// Requests sent for this unit.
        attempts: u32,
    },
    /// Every attempt timed out (the last one did).
    #[error("{unit}: timed out after {attempts} attempt(s)")]
    Timeout {
        /// What was requested.
        unit: String,
        /// Requests sent for this unit.
        attempts: u32,
    },
    /// The connection failed or broke.
    #[error("{unit}: transport error after {attempts} attempt(s): {detail}")]
    Transport {
        /// What was requested.
        unit: String,
        /// Requests sent for this unit.
        attempts: u32,
        /// Error chain without the URL.
        detail: String,
    },
    /// HTTP 200, but the body could not be parsed (or was an error body). A body that is
    /// not JSON at all (cut short) is retried like a 5xx; this is the last one.
    #[error("{unit}: malformed response after {attempts} attempt(s): {detail}")]
    Malformed {
        /// What was requested.
        unit: String,
        /// Why the body was rejected (scrubbed of credentials).
        detail: String,
        /// Requests sent for this unit.
        attempts: u32,
        /// The last body received, byte for byte, so the caller can keep it as evidence
        /// (e.g. under a quarantine key). Never part of `Display`.
        body: Option<Bytes>,
    },
    /// A caller error caught before sending, or an invalid `ClientConfig`.
    #[error("invalid request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },
}

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Http {
                unit,
                status,
                code,
                message,
                attempts,
            } => f
                .debug_struct("Http")
                .field("unit", unit)
                .field("status", status)
                .field("code", code)
                .field("message", message)
                .field("attempts", attempts)
                .finish(),
            ApiError::Timeout { unit, attempts } => f
                .debug_struct("Timeout")
                .field("unit", unit)
                .field("attempts", attempts)
                .finish(),
            ApiError::Transport {
                unit,
                attempts,
                detail,
            } => f
                .debug_struct("Transport")
                .field("unit", unit)
                .field("attempts", attempts)
                .field("detail", detail)
                .finish(),
            // The body is server-sent and unscrubbed (it is evidence): show its size only.
            ApiError::Malformed {
                unit,
                detail,
                attempts,
                body,
            } => f
                .debug_struct("Malformed")
                .field("unit", unit)
                .field("detail", detail)
                .field("attempts", attempts)
                .field("body_len", &body.as_ref().map(Bytes::len))
                .finish(),
            ApiError::InvalidRequest { detail } => f
                .debug_struct("InvalidRequest")
                .field("detail", detail)
                .finish(),
        }
    }
}

fn describe(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(": {c}: {m}"),
        (Some(c), None) => format!(": {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

/// Coarse error class, for counting and deciding what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// HTTP 429 until the attempts ran out.
    RateLimited,
    /// HTTP 5xx until the attempts ran out.
    ServerError,
    /// Any other non-200 status (not retried).
    ClientError,
    /// Timed out.
    Timeout,
    /// Connection-level failure.
    Transport,
    /// Unparsable or unexpected 200 body.
    Malformed,
    /// Rejected before sending.
    InvalidRequest,
}

impl ErrorKind {
    /// Stable snake_case name, e.g. `"rate_limited"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ServerError => "server_error",
            ErrorKind::ClientError => "client_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Malformed => "malformed",
            ErrorKind::InvalidRequest => "invalid_request",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiError {
    /// The error class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::Http { status, .. } => match *status {
                429 => ErrorKind::RateLimited,
                500..=599 => ErrorKind::ServerError,
                _ => ErrorKind::ClientError,
            },
            ApiError::Timeout { .. } => ErrorKind::Timeout,
            ApiError::Transport { .. } => ErrorKind::Transport,
            ApiError::Malformed { .. } => ErrorKind::Malformed,
            ApiError::InvalidRequest { .. } => ErrorKind::InvalidRequest,
        }
    }

    /// Requests sent for the unit (0 for an invalid request).
    pub fn attempts(&self) -> u32 {
        match self {
            ApiError::Http { attempts, .. }
            | ApiError::Timeout { attempts, .. }
            | ApiError::Transport { attempts, .. }
            | ApiError::Malformed { attempts, .. } => *attempts,
            ApiError::InvalidRequest { .. } => 0,
        }
    }

    /// The last malformed body, for [`ApiError::Malformed`].
    pub fn malformed_body(&self) -> Option<&Bytes> {
        match self {
            ApiError::Malformed { body, .. } => body.as_ref(),
            _ => None,
        }
    }

    /// The HTTP status, for [`ApiError::Http`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The credential-free unit label, when the error belongs to a request.
    pub fn unit(&self) -> Option<&str> {
        match self {
            ApiError::Http { unit, .. }
            | ApiError::Timeout { unit, .. }
            | ApiError::Transport { unit, .. }
            | ApiError::Malformed { unit, .. } => Some(unit),
            ApiError::InvalidRequest { .. } => None,
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            detail: detail.into(),
        }
    }
}
