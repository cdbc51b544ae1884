//! A desk client as staff tools use it: TLS trusting the network CA, and
//! the bearer token on every call.
use crate::pb::desk_client::DeskClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Desk = DeskClient<InterceptedService<Channel, Bearer>>;
pub type Stats = crate::pb::stats_client::StatsClient<InterceptedService<Channel, Bearer>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("--node: '{0}' is not an https:// URL")]
    Url(String),
    #[error("--token: not a valid token")]
    Token,
    /// `reason` is the innermost cause (e.g. "Connection refused"), not the
    /// whole chain of wrappers that repeat each other.
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
}

pub async fn channel(url: &str, ca_pem: &str) -> Result<Channel, ConnectError> {
    if !url.starts_with("https://") {
        return Err(ConnectError::Url(url.into()));
    }
    let t = |e: tonic::transport::Error| {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ConnectError::Transport {
            url: url.to_string(),
            reason: cause.to_string(),
        }
    };
    Endpoint::from_shared(url.to_string())
        .map_err(|_| ConnectError::Url(url.into()))?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)))
        .map_err(t)?
        .connect_timeout(std::time::Duration::from_secs(5))
        // Pings while an answer is awaited, so a long one is not taken for
        // a silent connection by the node's idle timeout.
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .connect()
        .await
        .map_err(t)
}

pub fn bearer(token: &str) -> Result<Bearer, ConnectError> {
    format!("Bearer {}", token.trim())
        .parse()
        .map(Bearer)
        .map_err(|_| ConnectError::Token)
}

pub async fn connect(url: &str, ca_pem: &str, token: &str) -> Result<Desk, ConnectError> {
    Ok(DeskClient::with_interceptor(
        channel(url, ca_pem).await?,
        bearer(token)?,
    ))
}

pub async fn connect_stats(url: &str, ca_pem: &str, token: &str) -> Result<Stats, ConnectError> {
    Ok(crate::pb::stats_client::StatsClient::with_interceptor(
        channel(url, ca_pem).await?,
        bearer(token)?,
    ))
}
