//! The one error every API route answers with: AWS's restJson1 shape (status,
//! `x-amzn-ErrorType` header, `{"message"}` body), so botocore and the AWS CLI name the
//! error, and the refusals that happen before a handler runs (unknown operation, wrong
//! method) in the same shape.

use actix_web::{HttpRequest, HttpResponse};
use ferrite_aws::AwsError;

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
