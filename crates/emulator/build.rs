//! Reads the deployment's function folders (`function-*/function.json` at the repository root) the way
//! the Functions host does at start-up: the folder name is the function name, the bindings come from the
//! JSON. The emulated host routes and invokes from this table, so it can never list a function the
//! deployment does not have, or miss one it has.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .expect("the repository root")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let json = entry.path().join("function.json");
            (name.starts_with("function-") && json.is_file()).then_some((name, json))
        })
        .collect();
    folders.sort();
    assert!(
        !folders.is_empty(),
        "no function-*/function.json under {}",
        root.display()
    );

    let mut table = String::from("pub static FUNCTIONS: &[Function] = &[\n");
    let mut names = String::new();
    for (name, json) in &folders {
        // A folder's own scan catches edits to its function.json and the folder's removal. Watching the
        // repository root would scan target/ too and rerun on every build, so a brand-new folder is caught
        // by the `table_lists_every_function_folder` test instead.
        println!("cargo:rerun-if-changed={}", json.parent().expect("a folder").display());
        writeln!(table, "    Function {{ name: {name:?}, bindings: &[").unwrap();
        for binding in bindings(json) {
            writeln!(table, "        {binding},").unwrap();
        }
        table.push_str("    ] },\n");
        let constant = name.to_ascii_uppercase().replace('-', "_");
        writeln!(
            names,
            "/// `{name}/function.json`.\npub const {constant}: &str = {name:?};"
        )
        .unwrap();
    }
    table.push_str("];\n");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("functions.rs");
    std::fs::write(out, format!("{names}\n{table}")).expect("writing the function table");
}

/// Each binding as a `Binding { … }` literal.
fn bindings(json: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    let document: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    let bindings = document["bindings"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no bindings array", json.display()));
    bindings
        .iter()
        .map(|b| {
            let text = |key: &str| b[key].as_str().map(str::to_owned);
            let required = |key: &str| text(key).unwrap_or_else(|| panic!("{}: a binding without {key}", json.display()));
            let methods: Vec<String> = b["methods"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect();
            format!(
                "Binding {{ kind: {:?}, direction: {:?}, name: {:?}, route: {:?}, methods: &{methods:?}, queue_name: {:?} }}",
                required("type"),
                required("direction"),
                required("name"),
                text("route"),
                text("queueName"),
            )
        })
        .collect()
}
