//! Reading a document the network authority publishes (the revocation
//! list, the directory): from a file, an `http://` URL, or an `https://`
//! URL whose server certificate chains to the network CA. Bounded in size
//! before it is held, and in time. The documents are signed, so what is
//! read is checked by its reader, not trusted for where it came from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where a published document is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{source_name}: {reason}")]
    Failed { source_name: String, reason: String },
}

/// How long one read may take.
const DEADLINE: Duration = Duration::from_secs(10);

/// Reads `source`, at most `max` bytes; `https` trusts the roots of
/// `tls` (the network CA). A larger document is refused before more than
/// `max` bytes (and 16 KiB of headers) are read.
pub async fn fetch(
    source: &Source,
    max: usize,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Vec<u8>, FetchError> {
    let failed = |reason: String| FetchError::Failed {
        source_name: source.to_string(),
        reason,
    };
    match source {
        Source::File(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let mut bytes = Vec::new();
            file.take(max as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| failed(e.to_string()))?;
            if bytes.len() > max {
                return Err(failed(format!("is larger than {max} bytes")));
            }
            Ok(bytes)
        }
        Source::Url(url) => tokio::time::timeout(DEADLINE, get(url, max, tls))
            .await
            .map_err(|_| failed("did not answer within 10 s".into()))?
            .map_err(failed),
    }
}

/// A plain HTTP/1.0 GET (no chunking, the server closes): enough for one
/// published file, and no client library for it.
async fn get(
    url: &str,
    max: usize,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Vec<u8>, String> {
    let (secure, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err("is not an http:// or https:// URL".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, address) = match authority.rsplit_once(':') {
        Some((h, _)) => (h, authority.to_string()),
        None => (
            authority,
            format!("{authority}:{}", if secure { 443 } else { 80 }),
        ),
    };
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    if secure {
        let config = tls.ok_or("https:// needs the network CA to check the server")?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|_| format!("{host} is not a host name"))?;
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(stream, &request, max).await
    } else {
        exchange(tcp, &request, max).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
    max: usize,
) -> Result<Vec<u8>, String> {
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    // A TLS peer that closes without close_notify still sent it all.
    let read = s
        .take((max + 16 * 1024 + 1) as u64)
        .read_to_end(&mut body)
        .await;
    if let Err(e) = read
        && body.is_empty()
    {
        return Err(e.to_string());
    }
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("answered without HTTP headers")?;
    let status = String::from_utf8_lossy(&body[..end.min(64)]).to_string();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!(
            "did not answer 200 OK ({})",
            status.lines().next().unwrap_or("")
        ));
    }
    let content = body.split_off(end + 4);
    if content.len() > max {
        return Err(format!("is larger than {max} bytes"));
    }
    Ok(content)
}
