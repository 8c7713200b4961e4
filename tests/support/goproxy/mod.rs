//! A Go module proxy the test controls: tiny modules written by the test,
//! served over HTTP in the GOPROXY protocol (`@v/list`, `.info`, `.mod`, `.zip`),
//! 404 for everything else (so that a GOPROXY list goes on to the next proxy).
//! Module zips are written here (stored, uncompressed entries: all Go needs).

pub mod dir;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use tokio_util::sync::CancellationToken;

/// A module version: its path, version and files (`go.mod` among them).
pub struct Module<'a> {
    pub path: &'a str,
    pub version: &'a str,
    pub files: &'a [(&'a str, &'a str)],
}

pub struct ModuleProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shutdown: CancellationToken,
}

impl ModuleProxy {
    /// Serves `modules` on a free local port (module paths must be lowercase).
    pub async fn start(modules: &[Module<'_>]) -> ModuleProxy {
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        for m in modules {
            let base = format!("{}/@v", m.path);
            let list = files.entry(format!("{base}/list")).or_default();
            list.extend_from_slice(format!("{}\n", m.version).as_bytes());
            let go_mod = m.files.iter().find(|(name, _)| *name == "go.mod").expect("a module has a go.mod").1;
            files.insert(format!("{base}/{}.mod", m.version), go_mod.as_bytes().to_vec());
            files.insert(format!("{base}/{}.info", m.version), format!(r#"{{"Version":"{}","Time":"2024-01-01T00:00:00Z"}}"#, m.version).into_bytes());
            let prefix = format!("{}@{}/", m.path, m.version);
            let entries: Vec<(String, &[u8])> = m.files.iter().map(|(name, body)| (format!("{prefix}{name}"), body.as_bytes())).collect();
            files.insert(format!("{base}/{}.zip", m.version), zip(&entries));
        }
        let app = axum::Router::new().fallback(serve).with_state(Arc::new(files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
        ModuleProxy { url, shutdown }
    }
}

impl Drop for ModuleProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve(State(files): State<Arc<HashMap<String, Vec<u8>>>>, uri: Uri) -> (StatusCode, Vec<u8>) {
    match files.get(uri.path().trim_start_matches('/')) {
        Some(body) => (StatusCode::OK, body.clone()),
        None => (StatusCode::NOT_FOUND, b"not found".to_vec()),
    }
}

/// A zip archive of `entries`, stored without compression.
pub fn zip(entries: &[(String, &[u8])]) -> Vec<u8> {
    const DOS_DATE_1980_01_01: u16 = 0x21;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, body) in entries {
        let offset = out.len() as u32;
        let crc = crc32(body);
        let fixed = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes()); // made by
            }
            for v in [20u16, 0, 0, 0, DOS_DATE_1980_01_01] {
                h.extend(v.to_le_bytes()); // needed, flags, stored, time, date
            }
            h.extend(crc.to_le_bytes());
            h.extend((body.len() as u32).to_le_bytes());
            h.extend((body.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            h
        };
        out.extend(fixed(0x0403_4b50, false));
        out.extend(name.as_bytes());
        out.extend(*body);
        central.extend(fixed(0x0201_4b50, true));
        central.extend([0u8; 10]); // comment length, disk, internal and external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (cd_offset, cd_size, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]); // disk numbers
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend(cd_size.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: module files are small.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
