//! The status of requests tonic refuses before a handler sees them, made
//! what SPEC.md §6 names: a body that does not decode as the request's
//! message is INVALID_ARGUMENT (tonic says INTERNAL), a message over the
//! listener's size limit is RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE).
//! Those refusals are trailers-only responses, so the status is in the
//! response headers, where this layer rewrites it.

use http::HeaderMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Code;

/// Rewrites the two refusals in `headers`; anything else is left alone.
pub fn normalize(headers: &mut HeaderMap) {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (to, text) = match code {
        Some(Code::Internal) if message.starts_with("failed%20to%20decode%20Protobuf") => (
            Code::InvalidArgument,
            "request: the body is not a valid protobuf message of this method",
        ),
        Some(Code::OutOfRange) if message.contains("message%20length%20too%20large") => (
            Code::ResourceExhausted,
            "request: the message is larger than this listener accepts (limits in the node's config)",
        ),
        _ => return,
    };
    let status = tonic::Status::new(to, text);
    headers.remove("grpc-message");
    let _ = status.add_header(headers);
}

/// The tower layer applying [`normalize`] to every response.
#[derive(Clone, Copy, Default)]
pub struct StatusLayer;

impl<S> tower::Layer<S> for StatusLayer {
    type Service = StatusService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StatusService { inner }
    }
}

#[derive(Clone)]
pub struct StatusService<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for StatusService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            normalize(res.headers_mut());
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(s: tonic::Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        s.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn decode_failures_and_oversize_get_their_codes() {
        let mut h = headers_of(tonic::Status::internal(
            "failed to decode Protobuf message: invalid wire type",
        ));
        normalize(&mut h);
        assert_eq!(h["grpc-status"], "3");
        let mut h = headers_of(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        ));
        normalize(&mut h);
        assert_eq!(h["grpc-status"], "8");
        let mut h = headers_of(tonic::Status::internal("the store failed"));
        normalize(&mut h);
        assert_eq!(h["grpc-status"], "13", "other INTERNAL errors stay");
    }
}
