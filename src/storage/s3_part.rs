//! One UploadPart request of a multipart upload, signed with AWS Signature V4
//! through rust-s3's signing functions. rust-s3's own part upload hashes every
//! part three times (SHA-256 twice, MD5 once); this hashes it once. The signed
//! `x-amz-content-sha256` still makes the server check every byte it received.

use bytes::Bytes;
use hmac::Mac;
use s3::error::S3Error;
use s3::serde_types::Part;
use s3::signing;
use s3::Bucket;
use sha2::{Digest, Sha256};

/// Why a part upload failed: a response from the server or no response at all.
#[derive(Debug, thiserror::Error)]
pub(super) enum PartError {
    #[error("signing: {0}")]
    Sign(#[from] S3Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Transport(String),
}

/// `YYYYMMDDTHHMMSSZ`, the timestamp format of Signature V4.
fn long_date(t: &time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Uploads `body` as part `number` of the multipart upload `upload_id` of `path`.
pub(super) async fn upload_part(
    bucket: &Bucket,
    path: &str,
    upload_id: &str,
    number: u32,
    body: Bytes,
) -> Result<Part, PartError> {
    let sha256 = hex::encode(Sha256::digest(&body));
    let url = format!(
        "{}/{}?partNumber={number}&uploadId={}",
        bucket.url(),
        signing::uri_encode(path.trim_start_matches('/'), false),
        signing::uri_encode(upload_id, true)
    );
    let parsed = url::Url::parse(&url).map_err(|e| PartError::Transport(format!("bad part URL {url}: {e}")))?;
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_string(),
    };
    let now = time::OffsetDateTime::now_utc();
    let credentials = bucket.credentials().await?;
    let header = |v: &str| http::HeaderValue::from_str(v).map_err(|e| PartError::Transport(e.to_string()));
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, header(&host)?);
    headers.insert(http::header::CONTENT_LENGTH, header(&body.len().to_string())?);
    headers.insert("x-amz-content-sha256", header(&sha256)?);
    headers.insert("x-amz-date", header(&long_date(&now))?);
    if let Some(token) = credentials.session_token.as_ref().or(credentials.security_token.as_ref()) {
        headers.insert("x-amz-security-token", header(token)?);
    }

    let region = bucket.region();
    let canonical = signing::canonical_request("PUT", &parsed, &headers, &sha256)?;
    let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
    let key = signing::signing_key(&now, credentials.secret_key.as_deref().unwrap_or_default(), &region, "s3")?;
    let mut mac = signing::HmacSha256::new_from_slice(&key).map_err(|e| PartError::Transport(e.to_string()))?;
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let authorization = signing::authorization_header(
        credentials.access_key.as_deref().unwrap_or_default(),
        &now,
        &region,
        &signing::signed_header_string(&headers),
        &signature,
    )?;
    headers.insert(http::header::AUTHORIZATION, header(&authorization)?);

    let mut request = bucket.http_client().put(url).headers(headers).body(body);
    if let Some(timeout) = bucket.request_timeout() {
        request = request.timeout(timeout);
    }
    let response = request.send().await.map_err(|e| PartError::Transport(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(PartError::Status { status: status.as_u16(), body });
    }
    let etag = response
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PartError::Transport("the server sent no ETag for the part".into()))?;
    Ok(Part { part_number: number, etag: etag.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_in_the_signature_v4_format() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_369_353_600 + 3_723).unwrap();
        assert_eq!(super::long_date(&t), "20130524T010203Z");
    }
}
