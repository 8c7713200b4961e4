//! Checks of the SBOMs and provenance with the official tools: the CycloneDX
//! JSON schema validator of `cyclonedx-python-lib` and `pyspdxtools` of
//! `spdx-tools` (both from PyPI, installed by `scripts/ensure-deps.sh --test`),
//! `minisign` and `go version -m` (with the builder image's Go).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Validates a CycloneDX 1.6 JSON file against the official schema (strict).
pub fn validate_cyclonedx(file: &Path) -> Result<(), String> {
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        print(err if err else 'valid')\n\
        sys.exit(1 if err else 0)\n";
    run(Command::new("python3").arg("-c").arg(script).arg(file), "python3 with cyclonedx-python-lib[json-validation]")
}

/// Validates an SPDX 2.3 JSON file with `pyspdxtools -i`.
pub fn validate_spdx(file: &Path) -> Result<(), String> {
    run(Command::new("pyspdxtools").arg("-i").arg(file), "pyspdxtools (spdx-tools)")
}

/// `minisign -V` of `file` with the signature beside it (`<file>.minisig`) and a public key file.
pub fn minisign_verifies(file: &Path, signature: &Path, public_key: &Path) -> Result<(), String> {
    run(Command::new("minisign").arg("-Vm").arg(file).arg("-x").arg(signature).arg("-p").arg(public_key), "minisign")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} is installed (scripts/ensure-deps.sh --test): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(()) } else { Err(text) }
}

/// The modules `go version -m` lists for a binary, as `path@version h1:…`
/// (the replacement's, where one took a module's place). Runs the builder
/// image's Go ([`super::go`]): the host needs none.
pub async fn go_version_m(binary: &Path) -> BTreeSet<(String, String, String)> {
    let go = super::go::goroot().await.join("bin/go");
    let out = Command::new(&go).args(["version", "-m"]).arg(binary).env_remove("GOROOT").output().expect("the builder image's go");
    assert!(out.status.success(), "{out:?}");
    let mut modules: Vec<(String, String, String)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.trim_start().split('\t').collect();
        let entry = || (f[1].to_string(), f.get(2).unwrap_or(&"").to_string(), f.get(3).unwrap_or(&"").to_string());
        match f[0] {
            "dep" => modules.push(entry()),
            "=>" => *modules.last_mut().unwrap() = entry(),
            _ => {}
        }
    }
    modules.into_iter().collect()
}
