//! `Call`: the extractor every API handler starts with. It reads the body (bounded), then
//! verifies the SigV4 signature before anything else about the request is looked at, so an
//! unsigned request learns nothing about query strings, bodies or resources; the query and
//! JSON body are parsed after, on demand, into AWS-shaped errors.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use ferrite_aws::sigv4;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt as _;

use super::Api;
use crate::access_keys::Lookup;
use crate::broker::message::now_ms;
use ferrite_aws::AwsError;

/// The largest request body the API reads (AWS's largest, a 128 KB publish, with room to
/// spare); a longer body is refused without reading the rest.
pub const MAX_BODY: usize = 256 * 1024;

/// The SigV4 service name a route is signed for.
pub trait Service {
    /// `iot` or `iotdata`, as in the credential scope.
    const NAME: &'static str;
}

/// The control plane (`aws iot ...`).
pub struct Iot;

impl Service for Iot {
    const NAME: &'static str = "iot";
}

/// The data plane (`aws iot-data ...`).
pub struct IotData;

impl Service for IotData {
    const NAME: &'static str = "iotdata";
}

/// The jobs data plane (`aws iot-jobs-data ...`).
pub struct IotJobsData;

impl Service for IotJobsData {
    const NAME: &'static str = "iot-jobs-data";
}

/// The service a request is signed for, read from its credential scope (header or
/// presigned query) without checking anything: how routes tell apart the APIs that share
/// paths. The signature itself is checked by the [`Call`] of the route picked.
pub fn signed_service(req: &actix_web::dev::RequestHead) -> Option<String> {
    let scope = |credential: &str| credential.split('/').nth(3).map(str::to_string);
    if let Some(auth) = req.headers.get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let credential = auth.split("Credential=").nth(1)?.split(',').next()?;
        return scope(credential);
    }
    let query = req.uri.query()?;
    let credential = query.split('&').find_map(|p| p.strip_prefix("X-Amz-Credential="))?;
    scope(&ferrite_aws::percent::decode(credential)?)
}

/// A request whose signature checked out: the request, its body and who signed it.
pub struct Call<S: Service = Iot> {
    /// The request (headers, path, query).
    pub req: HttpRequest,
    /// The whole body.
    pub body: web::Bytes,
    /// The node's region (`--region`): the one of every ARN, whatever region signed.
    region: String,
    service: PhantomData<S>,
}

impl<S: Service> Call<S> {
    /// The query string parsed into `T`; a malformed one is InvalidRequestException.
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, AwsError> {
        web::Query::<T>::from_query(self.req.query_string())
            .map(web::Query::into_inner)
            .map_err(|e| AwsError::invalid_request(format!("Invalid query string: {e}")))
    }

    /// The JSON body parsed into `T` (an empty body is the defaults); malformed JSON is
    /// InvalidRequestException.
    pub fn json<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, AwsError> {
        if self.body.is_empty() {
            return Ok(T::default());
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            AwsError::invalid_request(format!("The request body is not valid JSON for this operation: {e}"))
        })
    }

    /// The node's region, the region of the ARNs a call creates: the same as policies are
    /// checked with, whatever region the caller signed for (one region per node).
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl<S: Service + 'static> FromRequest for Call<S> {
    type Error = AwsError;
    type Future = LocalBoxFuture<'static, Result<Call<S>, AwsError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(&req, payload).await?;
            let api = req.app_data::<web::Data<Api>>().ok_or_else(AwsError::internal)?;
            // A key revoked anywhere in the cluster is refused here too, even if this node's
            // file still holds it; one published by any node is accepted.
            verify(&req, &body, S::NAME, |key| {
                let local = api.credentials.secret(key);
                if api.credentials.removed(key) {
                    return None; // deleted here: refused now, revoked everywhere within seconds
                }
                match api.services.meta.state().access_keys.lookup(key) {
                    Lookup::Revoked => None,
                    Lookup::Valid(secret) => Some(secret),
                    Lookup::Unknown => local,
                }
            })?;
            let region = api.services.broker.config.region.clone();
            Ok(Call { req, body, region, service: PhantomData })
        })
    }
}

/// A client sending a request body must send something at least this often ...
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// ... and all of it within this long, or it is answered 408 and the connection closed.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The body, at most [`MAX_BODY`] bytes, arriving within [`BODY_TIMEOUT`]: a longer one (declared or sent) is AWS's 413.
async fn read_body(req: &HttpRequest, mut payload: Payload) -> Result<web::Bytes, AwsError> {
    let too_large =
        || AwsError::new(413, "RequestEntityTooLargeException", format!("The request body exceeds {MAX_BODY} bytes"));
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let too_slow = || {
        AwsError::new(
            408,
            "RequestTimeoutException",
            format!(
                "The request body did not arrive in time (each part within {}s, all of it within {}s)",
                BODY_IDLE_TIMEOUT.as_secs(),
                BODY_TIMEOUT.as_secs()
            ),
        )
    };
    loop {
        let next =
            tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + BODY_IDLE_TIMEOUT), payload.next());
        let Some(chunk) = next.await.map_err(|_| too_slow())? else { break };
        let chunk = chunk.map_err(|e| AwsError::invalid_request(format!("Cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Checks the request's SigV4 signature for `service` with the keys `secret` knows.
fn verify(
    req: &HttpRequest,
    body: &[u8],
    service: &str,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<sigv4::Signer, AwsError> {
    let headers = sigv4::header_list(req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    let signed = sigv4::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: &headers,
        body,
    };
    sigv4::verify(&signed, &[service], (now_ms() / 1000) as i64, secret)
}
