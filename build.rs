//! Embeds every file of `migrations/` and `sql/procedures/` into the binary, in
//! name order, so that a new SQL file can never be forgotten in a hand-kept list.

use std::{env, fs, path::PathBuf};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut out = String::new();
    for (name, dir) in [("MIGRATIONS", "migrations"), ("PROCEDURES", "sql/procedures")] {
        println!("cargo:rerun-if-changed={dir}");
        let mut files: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        out += &format!("pub const {name}: &[(&str, &str)] = &[\n");
        for f in files {
            let file_name = f.file_name().unwrap().to_str().unwrap().to_string();
            out += &format!("    ({file_name:?}, include_str!({:?})),\n", f.display().to_string());
        }
        out += "];\n";
    }
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("sql_files.rs"), out).unwrap();
}
