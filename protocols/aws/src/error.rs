//! AWS's restJson1 error: an HTTP status, the error type the SDKs read from the
//! `x-amzn-ErrorType` header to pick the exception they raise, and a `{"message": ...}` body.
//! Every refusal of the API (a bad signature, a missing thing, a full queue) is one of these,
//! so SDK callers see the exception AWS would raise.

use std::fmt;

/// An error the API answers with, in AWS's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The HTTP status.
    pub status: u16,
    /// The error type AWS names (`x-amzn-ErrorType`), e.g. `ResourceNotFoundException`.
    pub error_type: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl AwsError {
    /// An error of any status and type, for the types without a constructor of their own.
    pub fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { status, error_type, message: message.into() }
    }

    /// 400 `InvalidRequestException`: the request itself is malformed or breaks a rule.
    pub fn invalid_request(message: impl Into<String>) -> AwsError {
        AwsError::new(400, "InvalidRequestException", message)
    }

    /// 404 `ResourceNotFoundException`: the named thing, shadow, policy... does not exist.
    pub fn not_found(message: impl Into<String>) -> AwsError {
        AwsError::new(404, "ResourceNotFoundException", message)
    }

    /// 409 `ConflictException`: the request contradicts the resource's current state (a
    /// version mismatch, a resource that already exists differently).
    pub fn conflict(message: impl Into<String>) -> AwsError {
        AwsError::new(409, "ConflictException", message)
    }

    /// 413 `RequestEntityTooLargeException`: a payload or document over AWS's size limit.
    pub fn too_large(message: impl Into<String>) -> AwsError {
        AwsError::new(413, "RequestEntityTooLargeException", message)
    }

    /// 429 `ThrottlingException`: over a rate or in-flight limit; the SDKs retry it.
    pub fn throttled(message: impl Into<String>) -> AwsError {
        AwsError::new(429, "ThrottlingException", message)
    }

    /// 500 `InternalFailureException` with AWS's fixed message: the node failed (storage, a
    /// commit), not the request. The cause belongs in the log, not in the answer.
    pub fn internal() -> AwsError {
        AwsError::new(500, "InternalFailureException", "Internal service failure")
    }

    /// 401 `UnauthorizedException`: the caller is authenticated but may not see the resource
    /// (AWS answers this, not 404, for some missing resources, e.g. topic rules).
    pub fn unauthorized(message: impl Into<String>) -> AwsError {
        AwsError::new(401, "UnauthorizedException", message)
    }

    /// 403 with the given type: a request whose authentication failed. SigV4 refusals name
    /// their cause (`InvalidSignatureException`, `UnrecognizedClientException`, ...), and the
    /// SDKs tell them apart by type, so the type is the caller's.
    pub fn forbidden(error_type: &'static str, message: impl Into<String>) -> AwsError {
        AwsError::new(403, error_type, message)
    }

    /// The response body: `{"message": ...}` as JSON bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "message": self.message }).to_string().into_bytes()
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for AwsError {}

/// Handlers return `Result<_, AwsError>` and actix writes AWS's response: the status, the
/// `x-amzn-ErrorType` header and the JSON body.
#[cfg(feature = "actix")]
impl actix_web::ResponseError for AwsError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        actix_web::HttpResponse::build(self.status_code())
            .insert_header(("x-amzn-ErrorType", self.error_type))
            .content_type("application/json")
            .body(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_json_message() {
        let e = AwsError::not_found("No thing \"lamp\"");
        assert_eq!((e.status, e.error_type), (404, "ResourceNotFoundException"));
        let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(body, serde_json::json!({ "message": "No thing \"lamp\"" }));
    }

    #[test]
    fn internal_failures_hide_their_cause() {
        let e = AwsError::internal();
        assert_eq!(e.to_string(), "InternalFailureException: Internal service failure");
        assert_eq!(e.status, 500);
    }

    #[cfg(feature = "actix")]
    #[test]
    fn actix_responses_carry_status_type_and_body() {
        use actix_web::ResponseError as _;
        let response = AwsError::throttled("Rate exceeded").error_response();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers().get("x-amzn-ErrorType").unwrap(), "ThrottlingException");
        assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
    }
}
