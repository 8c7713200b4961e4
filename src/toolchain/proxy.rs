//! Fetching a toolchain module from the configured module proxies and checking
//! it as `go` checks any module: its `h1:` hash ([`super::dirhash`]) must be the
//! one the checksum database's lookup gives, and the lookup's signed tree note
//! must verify with the database's public key ([`super::note`]).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::note::{NoteVerifier, SUM_GOLANG_ORG};
use super::ToolchainError;

/// The module Go publishes its release toolchains under.
pub const TOOLCHAIN_MODULE: &str = "golang.org/toolchain";
/// Connecting to a proxy; the download itself is bounded by [`DOWNLOAD_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A toolchain zip is about 70 MB: minutes even on a slow link.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A checksum database lookup is a few hundred bytes.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxies of a GOPROXY value, in order (`direct` and `off` skipped: a
/// toolchain comes only from a proxy).
pub fn proxy_bases(go_proxy: &str) -> Vec<String> {
    go_proxy
        .split([',', '|'])
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "direct" && *p != "off")
        .map(|p| p.trim_end_matches('/').to_string())
        .collect()
}

/// The checksum database named by a GOSUMDB value: `off` (none), a known name
/// (`sum.golang.org`), or a verifier key optionally followed by its URL.
pub fn sumdb(go_sumdb: &str) -> Result<Option<(NoteVerifier, String)>, ToolchainError> {
    let value = go_sumdb.trim();
    if value == "off" || value.is_empty() {
        return Ok(None);
    }
    let mut words = value.split_whitespace();
    let key = words.next().unwrap_or_default();
    let key = if key == "sum.golang.org" { SUM_GOLANG_ORG } else { key };
    let verifier = NoteVerifier::parse(key).map_err(|e| ToolchainError::Config(format!("go_sumdb: {e}")))?;
    let url = match words.next() {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("https://{}", verifier.name),
    };
    Ok(Some((verifier, url)))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("caddy-build-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is available")
}

/// Downloads `<proxy>/golang.org/toolchain/@v/<version>.zip` into `dest` from
/// the first proxy that has it (a 404 or 410 passes on to the next, as `go` does).
pub async fn download_zip(client: &reqwest::Client, go_proxy: &str, version: &str, dest: &Path) -> Result<String, ToolchainError> {
    let mut last = format!("no module proxy configured (go_proxy {go_proxy:?})");
    for base in proxy_bases(go_proxy) {
        let url = format!("{base}/{TOOLCHAIN_MODULE}/@v/{version}.zip");
        let resp = client.get(&url).timeout(DOWNLOAD_TIMEOUT).send().await.map_err(|e| ToolchainError::Proxy(format!("{url}: {e}")))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            last = format!("{url}: {status}");
            continue;
        }
        if status.is_client_error() {
            let body = resp.text().await.unwrap_or_default();
            return Err(ToolchainError::NotServed(format!("{TOOLCHAIN_MODULE}@{version}: {url} answered {status}: {}", body.trim())));
        }
        if !status.is_success() {
            return Err(ToolchainError::Proxy(format!("{url}: {status}")));
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| ToolchainError::Io(format!("{}: {e}", dest.display())))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ToolchainError::Proxy(format!("{url}: {e}")))?;
            file.write_all(&chunk).await.map_err(|e| ToolchainError::Io(format!("{}: {e}", dest.display())))?;
        }
        file.sync_all().await.map_err(|e| ToolchainError::Io(format!("{}: {e}", dest.display())))?;
        debug!(url, "toolchain downloaded");
        return Ok(url);
    }
    Err(ToolchainError::NotServed(format!("{TOOLCHAIN_MODULE}@{version}: {last}")))
}

/// The `h1:` hash the checksum database records for `golang.org/toolchain@version`,
/// read through the proxies (`<proxy>/sumdb/<name>/lookup/…`) or, failing that,
/// from the database itself; the lookup's tree note must be signed by its key.
pub async fn sumdb_hash(client: &reqwest::Client, go_proxy: &str, verifier: &NoteVerifier, db_url: &str, version: &str) -> Result<String, ToolchainError> {
    let path = format!("lookup/{TOOLCHAIN_MODULE}@{version}");
    let mut urls: Vec<String> = proxy_bases(go_proxy).iter().map(|p| format!("{p}/sumdb/{}/{path}", verifier.name)).collect();
    urls.push(format!("{db_url}/{path}"));
    let mut last = String::new();
    for url in urls {
        match client.get(&url).timeout(LOOKUP_TIMEOUT).send().await {
            Ok(resp) if resp.status().is_success() => {
                let body = resp.text().await.map_err(|e| ToolchainError::Proxy(format!("{url}: {e}")))?;
                return record_hash(verifier, &body, version).map_err(|e| ToolchainError::Checksum(format!("{url}: {e}")));
            }
            Ok(resp) => last = format!("{url}: {}", resp.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
        warn!(lookup = %last, "checksum database lookup failed; trying the next source");
    }
    Err(ToolchainError::Proxy(format!("checksum database lookup of {TOOLCHAIN_MODULE}@{version} failed: {last}")))
}

/// Checks a lookup answer (`<record id>\n<go.sum lines>\n\n<signed tree note>`)
/// and returns the zip's `h1:` from its record.
fn record_hash(verifier: &NoteVerifier, body: &str, version: &str) -> Result<String, String> {
    let split = body.find("\n\n").ok_or("malformed lookup answer")?;
    let (record, note) = (&body[..split + 1], &body[split + 2..]);
    verifier.open(note).map_err(|e| e.to_string())?;
    let prefix = format!("{TOOLCHAIN_MODULE} {version} ");
    record
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .filter(|h| h.starts_with("h1:"))
        .map(str::to_string)
        .ok_or_else(|| format!("the record names no h1: hash for {TOOLCHAIN_MODULE}@{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOKUP: &str = "61743986\ngolang.org/toolchain v0.0.1-go1.26.8.linux-amd64 h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=\ngolang.org/toolchain v0.0.1-go1.26.8.linux-amd64/go.mod h1:8wlg68NqwW7eMnI1aABk/C2pDYXj8mrMY4TyRfiLeS0=\n\ngo.sum database tree\n66332798\nczPocWFmMwQrSENohgEPvFiqA+2i/3lRZhHbxtma2UQ=\n\n— sum.golang.org Az3grh19zTBOmg0dGOAELF5SP1N/QTSsuYwquERee13uccsbttgwVlS/0MhlHd7IEvb6fQVKmu7XFovf0PT1tKOnHQo=\n";

    #[test]
    fn reads_the_hash_from_a_signed_lookup() {
        let (v, url) = sumdb("sum.golang.org").unwrap().unwrap();
        assert_eq!(url, "https://sum.golang.org");
        let version = "v0.0.1-go1.26.8.linux-amd64";
        assert_eq!(record_hash(&v, LOOKUP, version).unwrap(), "h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=");
        assert!(record_hash(&v, LOOKUP, "v0.0.1-go1.26.7.linux-amd64").is_err(), "another version's record");
        assert!(record_hash(&v, &LOOKUP.replace("66332798", "66332797"), version).is_err(), "unsigned tree");
        assert!(sumdb("off").unwrap().is_none());
        assert!(sumdb("sum.example.org").is_err(), "an unknown name needs its key");
        assert_eq!(proxy_bases("https://a.example/, direct|https://b.example,off"), ["https://a.example", "https://b.example"]);
    }
}
