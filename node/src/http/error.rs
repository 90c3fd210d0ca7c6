//! The one error every API route answers with: AWS's restJson1 shape (status,
//! `x-amzn-ErrorType` header, `{"message"}` body), so botocore and the AWS CLI name the
//! error, and the refusals that happen before a handler runs (unknown operation, wrong
//! method) in the same shape.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::shadow::ShadowError;

/// An AWS API error; actix builds the response when a handler returns it, so handlers can
/// use `?`.
#[derive(Debug)]
pub struct AwsError {
    /// HTTP status.
    pub status: u16,
    /// `x-amzn-ErrorType`: the exception botocore raises.
    pub error_type: &'static str,
    /// `{"message"}`.
    pub message: String,
}

impl AwsError {
    /// An error with AWS's status, error type and message.
    pub fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { status, error_type, message: message.into() }
    }

    /// 400 InvalidRequestException: the request itself is wrong.
    pub fn invalid(message: impl Into<String>) -> AwsError {
        AwsError::new(400, "InvalidRequestException", message)
    }

    /// 500 InternalFailureException with AWS's text; the cause goes to the log, not the client.
    pub fn internal() -> AwsError {
        AwsError::new(500, "InternalFailureException", "Internal service failure")
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl actix_web::ResponseError for AwsError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .insert_header(("x-amzn-ErrorType", self.error_type))
            .json(json!({ "message": self.message }))
    }
}

impl From<ferrite_aws::AwsError> for AwsError {
    fn from(e: ferrite_aws::AwsError) -> AwsError {
        AwsError::new(e.status, e.error_type, e.message)
    }
}

impl From<crate::registry::things::RegistryError> for AwsError {
    fn from(e: crate::registry::things::RegistryError) -> AwsError {
        AwsError::new(e.status, e.error_type, e.message)
    }
}

impl From<ShadowError> for AwsError {
    fn from(e: ShadowError) -> AwsError {
        let error_type = match e.code {
            400 => "InvalidRequestException",
            404 => "ResourceNotFoundException",
            409 => "ConflictException",
            413 => "RequestEntityTooLargeException",
            429 => "ThrottlingException",
            _ => "InternalFailureException",
        };
        AwsError::new(e.code, error_type, e.message)
    }
}

/// What API handlers return.
pub type ApiResult = Result<HttpResponse, AwsError>;

/// The answer to a path no operation has: AWS's 404 `UnknownOperationException`, with what
/// was asked so the caller can see the typo.
pub async fn unknown_operation(req: HttpRequest) -> ApiResult {
    Err(AwsError::new(
        404,
        "UnknownOperationException",
        format!("No operation matches {} {}", req.method(), req.path()),
    ))
}

/// The answer to a method a path does not have: 405 `MethodNotAllowedException`; nothing
/// runs, so nothing changes.
pub async fn method_not_allowed(req: HttpRequest) -> ApiResult {
    Err(AwsError::new(
        405,
        "MethodNotAllowedException",
        format!("{} is not an operation on {}", req.method(), req.path()),
    ))
}
