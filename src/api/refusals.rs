//! Requests hyper refuses before the router sees them: a malformed request line
//! or header field (400), a request target over 65534 bytes (414, the most
//! hyper parses), a request head that overflows the connection's read buffer or
//! has more than 100 header fields (431). hyper answers those itself with a bare
//! status line and `content-length: 0`, then closes the connection. Each
//! connection's stream is wrapped in [`EnvelopeRefusals`] so that such an answer
//! goes out in the JSON error envelope instead, like every other error.
//!
//! hyper writes its refusal only when no response is in progress, as one small
//! write, and as the connection's last bytes. It is recognised by its exact form
//! (one of those three status lines; no fields but `connection: close`,
//! `content-length: 0` and `date`) and replaced; every other byte passes through
//! untouched. Heads within `api.max_uri_bytes` and `api.max_header_bytes` reach
//! the router, which refuses the oversized ones itself ([`super::middleware`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::envelope;
use super::middleware::{fresh_request_id, REQUEST_ID_HEADER};

/// The largest write that can be one of hyper's refusals (status line, three
/// short fields); anything longer is passed through without a look.
const MAX_REFUSAL_BYTES: usize = 200;

/// What a refused requester is told, per status; built once from the config.
pub struct RefusalMessages {
    bad_request: String,
    uri_too_long: String,
    head_too_large: String,
}

impl RefusalMessages {
    pub fn new(max_uri_bytes: usize, max_header_bytes: usize) -> RefusalMessages {
        RefusalMessages {
            bad_request: "the request is not valid HTTP/1.1: its request line or a header field cannot be parsed".into(),
            uri_too_long: format!("the request target is too long; at most {max_uri_bytes} bytes are accepted"),
            head_too_large: format!(
                "the request head is too large; at most {max_uri_bytes} bytes of request target, \
                 {max_header_bytes} bytes of header fields and 100 fields are accepted"
            ),
        }
    }

    fn for_status(&self, status: StatusCode) -> &str {
        match status {
            StatusCode::URI_TOO_LONG => &self.uri_too_long,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => &self.head_too_large,
            _ => &self.bad_request,
        }
    }
}

/// A connection's stream, with hyper's bare refusals rewritten into the envelope.
pub struct EnvelopeRefusals<S> {
    inner: S,
    messages: Arc<RefusalMessages>,
    /// The envelope answer standing in for hyper's refusal, and how much of it
    /// is written. Boxed: almost no connection ever has one.
    replacement: Option<Box<(Vec<u8>, usize)>>,
}

impl<S> EnvelopeRefusals<S> {
    pub fn new(inner: S, messages: Arc<RefusalMessages>) -> EnvelopeRefusals<S> {
        EnvelopeRefusals { inner, messages, replacement: None }
    }
}

/// hyper's refusal, recognised: its status and its `date` value.
fn hyper_refusal(buf: &[u8]) -> Option<(StatusCode, Option<&str>)> {
    if buf.len() > MAX_REFUSAL_BYTES || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(&buf[..buf.len() - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status = match lines.next()? {
        "HTTP/1.1 400 Bad Request" => StatusCode::BAD_REQUEST,
        "HTTP/1.1 414 URI Too Long" => StatusCode::URI_TOO_LONG,
        "HTTP/1.1 431 Request Header Fields Too Large" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let (mut date, mut empty) = (None, false);
    for line in lines {
        match line.split_once(": ")? {
            ("content-length", "0") => empty = true,
            ("connection", "close") => {}
            ("date", value) => date = Some(value),
            _ => return None,
        }
    }
    empty.then_some((status, date))
}

/// The envelope answer for a refusal with `status`, closing the connection.
fn envelope_answer(status: StatusCode, date: Option<&str>, message: &str) -> Vec<u8> {
    let id = fresh_request_id();
    let body = envelope(status, message, &id);
    let reason = status.canonical_reason().unwrap_or("");
    let date = date.map(|d| format!("date: {d}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\n{REQUEST_ID_HEADER}: {id}\r\nconnection: close\r\n{date}\r\n",
        status.as_str(),
        body.len()
    );
    tracing::debug!(status = status.as_u16(), request_id = %id, "refused a request head hyper could not take");
    [head.into_bytes(), body.into_bytes()].concat()
}

impl<S: AsyncWrite + Unpin> EnvelopeRefusals<S> {
    /// If `buf` is hyper's refusal, takes it and starts writing the envelope answer instead.
    fn replaces(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<io::Result<usize>> {
        if self.replacement.is_some() {
            return None;
        }
        let (status, date) = hyper_refusal(buf)?;
        let answer = envelope_answer(status, date, self.messages.for_status(status));
        self.replacement = Some(Box::new((answer, 0)));
        // Taken in full; what is not written yet goes out on the next flush or shutdown.
        match self.poll_replacement(cx) {
            Poll::Ready(Err(e)) => Some(Err(e)),
            _ => Some(Ok(buf.len())),
        }
    }

    /// Writes what is left of the envelope answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(replacement) = self.replacement.as_mut() else { return Poll::Ready(Ok(())) };
        let (bytes, written) = &mut **replacement;
        while *written < bytes.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => *written += n,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EnvelopeRefusals<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EnvelopeRefusals<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(taken) = this.replaces(cx, buf) {
            return Poll::Ready(taken);
        }
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A refusal is written as one buffer.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(one), None) = (filled.next(), filled.next())
            && let Some(taken) = this.replaces(cx, one)
        {
            return Poll::Ready(taken);
        }
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hyper_refusals() {
        let date = "date: Sun, 29 Nov 2026 13:20:35 GMT";
        let refusal = format!("HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n{date}\r\n\r\n");
        assert_eq!(
            hyper_refusal(refusal.as_bytes()),
            Some((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Some("Sun, 29 Nov 2026 13:20:35 GMT")))
        );
        let uri = "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_refusal(uri.as_bytes()), Some((StatusCode::URI_TOO_LONG, None)));
        for other in [
            // Our own answers carry a body and more fields.
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            "HTTP/1.1 400 Bad Request\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            "\0\u{1}binary HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert_eq!(hyper_refusal(other.as_bytes()), None, "{other:?}");
        }
    }

    #[test]
    fn the_answer_is_the_envelope() {
        let answer = envelope_answer(StatusCode::URI_TOO_LONG, Some("Sun, 29 Nov 2026 13:20:35 GMT"), "too long");
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("date: Sun, 29 Nov 2026 13:20:35 GMT"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status_code"], 414);
        assert_eq!(v["error"]["message"], "too long");
        assert!(head.contains(&format!("x-request-id: {}", v["error"]["id"].as_str().unwrap())), "{head}");
    }
}
