//! The SPDX 2.3 SBOM: the Caddy binary as the package the document describes
//! (its sha256, purpose APPLICATION, build settings in its comment), each Go
//! module statically linked into it as a package of its own (purl, version,
//! `h1:` hash), and the Go toolchain as its build tool.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::{build_settings, caddy_version, download_url, h1_to_hex, summary, timestamp, uuid_v4, AttestError, Component, Input};
use super::{FALLBACK_BASE, TOOL_NAME, TOOL_VERSION};

const MAIN_ID: &str = "SPDXRef-Package-caddy";
const GO_ID: &str = "SPDXRef-Package-go-toolchain";
const NOASSERTION: &str = "NOASSERTION";

pub fn document(input: &Input, components: &[Component]) -> Result<Value, AttestError> {
    let settings: Vec<String> = build_settings(input).iter().map(|(k, v)| format!("{k}={v}")).collect();
    let main = json!({
        "SPDXID": MAIN_ID,
        "name": "caddy",
        "versionInfo": caddy_version(input.spec),
        "packageFileName": input.file_name,
        "downloadLocation": download_url(input).unwrap_or_else(|| NOASSERTION.into()),
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": input.sha256}],
        "primaryPackagePurpose": "APPLICATION",
        "summary": summary(input.spec),
        "comment": format!("Build key {}. Go build settings: {}", input.build_key, settings.join("; ")),
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    });
    let go = json!({
        "SPDXID": GO_ID,
        "name": "go",
        "versionInfo": input.info.go_version,
        "downloadLocation": "https://go.dev/dl/",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "APPLICATION",
        "comment": "The Go toolchain that compiled the binary; its standard library is linked in.",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    });

    let mut packages = vec![main, go];
    let mut relationships = vec![
        relationship("SPDXRef-DOCUMENT", "DESCRIBES", MAIN_ID),
        relationship(GO_ID, "BUILD_TOOL_OF", MAIN_ID),
    ];
    let mut taken = HashSet::new();
    for c in components {
        let id = unique_id(&c.built.path, &c.built.version, &mut taken);
        packages.push(module(c, &id));
        relationships.push(relationship(MAIN_ID, "STATIC_LINK", &id));
    }
    let base = match input.public_url.trim_end_matches('/') {
        "" => FALLBACK_BASE,
        b => b,
    };
    Ok(json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("caddy-{}", input.build_key),
        "documentNamespace": format!("{base}/spdx/{}/{}", input.build_key, uuid_v4()),
        "creationInfo": {
            "created": timestamp(input.finished_on),
            "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
        },
        "documentDescribes": [MAIN_ID],
        "packages": packages,
        "relationships": relationships,
    }))
}

fn module(c: &Component, id: &str) -> Value {
    let mut comment = Vec::new();
    let mut p = json!({
        "SPDXID": id,
        "name": c.built.path,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "LIBRARY",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    });
    if !c.built.version.is_empty() {
        p["versionInfo"] = json!(c.built.version);
    }
    if let Some(purl) = &c.purl {
        p["externalRefs"] = json!([purl_ref(purl)]);
    }
    if let Some(h1) = &c.built.sum {
        if let Some(hex) = h1_to_hex(h1) {
            p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": hex}]);
        }
        comment.push(format!("Go module hash {h1} (the SHA-256 checksum is this dirhash in hex)"));
    }
    if let Some(old) = &c.replaces {
        comment.push(format!("replaces {}@{}", old.path, old.version));
    }
    if !comment.is_empty() {
        p["comment"] = json!(comment.join("; "));
    }
    p
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

/// `SPDXRef-Package-go-<path>-<version>` in the characters SPDX ids allow,
/// numbered when two modules would map to the same id.
fn unique_id(path: &str, version: &str, taken: &mut HashSet<String>) -> String {
    let clean: String =
        format!("{path}-{version}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    let base = format!("SPDXRef-Package-go-{clean}");
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}
