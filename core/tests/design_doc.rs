//! The answer-file reference in `docs/design.md` against the answer file's JSON Schema, both ways: every key
//! the schema has is in the reference, and the reference has no key the schema lacks. A key added to the
//! types without its line in the design, or a documented key that was renamed, fails here by name.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// The key paths of a schema (`lvm.volumes.[].size`), following `$ref`s and combinators.
fn schema_keys(schema: &Value, defs: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.rsplit('/').next().unwrap()],
        None => schema,
    };
    for k in ["allOf", "anyOf", "oneOf"] {
        for sub in schema
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            schema_keys(sub, defs, prefix, out);
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.insert(format!("{prefix}{k}"));
            schema_keys(v, defs, &format!("{prefix}{k}."), out);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        schema_keys(items, defs, &format!("{prefix}[]."), out);
    }
}

/// The key paths of a TOML value, arrays of tables as `[].`.
fn toml_keys(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                out.insert(format!("{prefix}{k}"));
                toml_keys(v, &format!("{prefix}{k}."), out);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                toml_keys(item, &format!("{prefix}[]."), out);
            }
        }
        _ => {}
    }
}

/// The TOML block under the heading `## The answer file`, with its commented alternatives
/// (`# or match = { ... }`) taken as keys too.
fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/design.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = doc
        .split("\n## The answer file")
        .nth(1)
        .expect("docs/design.md has a section `## The answer file`");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the answer-file section has a ```toml block");
    let mut text = String::new();
    for line in block.lines() {
        text.push_str(line);
        text.push('\n');
        // `target = "..."   # or match = {...}` documents an alternative key of the same table.
        if let Some((_, alt)) = line.split_once("# or ")
            && alt.contains(" = ")
        {
            text.push_str(alt);
            text.push('\n');
        }
    }
    text
}

#[test]
fn design_reference_lists_every_answer_key() {
    let schema = xenprov_core::answer::schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut want = BTreeSet::new();
    schema_keys(&schema, &defs, "", &mut want);
    let doc: toml::Value = toml::from_str(&reference()).expect("the reference block is TOML");
    let mut have = BTreeSet::new();
    toml_keys(&doc, "", &mut have);
    let missing: Vec<_> = want.difference(&have).collect();
    let unknown: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/design.md's answer-file reference is out of date: keys the schema has but the reference lacks: \
         {missing:?}; keys the reference has but the schema lacks: {unknown:?}"
    );
}
