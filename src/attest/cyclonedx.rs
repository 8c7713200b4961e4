//! The CycloneDX 1.6 SBOM: the Caddy binary as `metadata.component` (with its
//! sha256 and build settings as properties), every Go module linked into it
//! as a library component (purl, version, `h1:` hash as SHA-256 and verbatim),
//! and the Go toolchain whose standard library it carries.

use serde_json::{json, Value};

use super::{build_settings, caddy_version, download_url, h1_to_hex, summary, timestamp, uuid_v4, AttestError, Component, Input};
use super::{PROPERTY_PREFIX, TOOL_NAME, TOOL_VERSION};

const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";
const MAIN_REF: &str = "caddy";
const GO_REF: &str = "go-toolchain";

pub fn document(input: &Input, components: &[Component]) -> Result<Value, AttestError> {
    let property = |name: &str, value: &str| json!({"name": format!("{PROPERTY_PREFIX}:{name}"), "value": value});
    let mut main_props: Vec<Value> = build_settings(input).iter().map(|(k, v)| property(&format!("build:{k}"), v)).collect();
    main_props.push(property("build_key", input.build_key));
    let mut main = json!({
        "type": "application",
        "bom-ref": MAIN_REF,
        "name": "caddy",
        "version": caddy_version(input.spec),
        "description": summary(input.spec),
        "hashes": [{"alg": "SHA-256", "content": input.sha256}],
        "properties": main_props,
    });
    if let Some(url) = download_url(input) {
        main["externalReferences"] = json!([{"type": "distribution", "url": url}]);
    }

    let mut list: Vec<Value> = components.iter().map(|c| module(c, &property)).collect();
    list.push(json!({
        "type": "application",
        "bom-ref": GO_REF,
        "name": "go",
        "version": input.info.go_version,
        "description": "The Go toolchain that compiled the binary; its standard library is linked in",
    }));
    let mut depends_on: Vec<Value> = components.iter().map(|c| json!(bom_ref(c))).collect();
    depends_on.push(json!(GO_REF));

    Ok(json!({
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_v4()),
        "version": 1,
        "metadata": {
            "timestamp": timestamp(input.finished_on),
            "tools": {"components": [{"type": "application", "name": TOOL_NAME, "version": TOOL_VERSION}]},
            "component": main,
        },
        "components": list,
        "dependencies": [{"ref": MAIN_REF, "dependsOn": depends_on}],
    }))
}

fn bom_ref(c: &Component) -> String {
    c.purl.clone().unwrap_or_else(|| format!("{}@{}", c.built.path, c.built.version))
}

fn module(c: &Component, property: &impl Fn(&str, &str) -> Value) -> Value {
    let mut m = json!({
        "type": "library",
        "bom-ref": bom_ref(c),
        "name": c.built.path,
        "scope": "required",
    });
    if !c.built.version.is_empty() {
        m["version"] = json!(c.built.version);
    }
    if let Some(purl) = &c.purl {
        m["purl"] = json!(purl);
    }
    let mut props = Vec::new();
    if let Some(h1) = &c.built.sum {
        if let Some(hex) = h1_to_hex(h1) {
            m["hashes"] = json!([{"alg": "SHA-256", "content": hex}]);
        }
        props.push(property("go:h1", h1));
    }
    if let Some(old) = &c.replaces {
        props.push(property("go:replaces", &format!("{}@{}", old.path, old.version)));
    }
    if !props.is_empty() {
        m["properties"] = json!(props);
    }
    m
}
