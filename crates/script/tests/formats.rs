//! The format: examples lint clean, YAML → model → JSON → model round-trips, and the
//! published JSON Schema describes what the loader accepts.

use callhelper_script::{Dialect, check, json_schema, load_bytes, load_str};
use serde_json::Value as Json;

use crate::common::example_files;

#[test]
fn every_example_lints_clean() {
    for file in example_files() {
        let bytes = std::fs::read(&file).expect("readable");
        let (script, diags) = check(&bytes, Dialect::from_path(&file.to_string_lossy()));
        assert!(script.is_some(), "{}", file.display());
        assert!(
            diags.is_empty(),
            "{}:\n{}",
            file.display(),
            diags
                .iter()
                .map(|d| d.render(&file.display().to_string(), Default::default()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn every_example_comes_in_russian_and_english_with_the_same_structure() {
    let files = example_files();
    let mut pairs = 0;
    for ru in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".ru.yaml"))
    {
        let en = ru.with_file_name(
            ru.file_name()
                .expect("a file")
                .to_string_lossy()
                .replace(".ru.yaml", ".en.yaml"),
        );
        let load = |p: &std::path::Path| {
            load_bytes(&std::fs::read(p).expect("readable"), Dialect::Yaml)
                .script
                .expect("loads")
        };
        let (ru_s, en_s) = (load(ru), load(&en));
        assert_eq!(ru_s.locale, "ru");
        assert_eq!(en_s.locale, "en");
        let ids = |s: &callhelper_script::Script| {
            s.all_steps()
                .map(|(_, st)| {
                    let keys: Vec<_> = st.answers.iter().map(|a| a.key.clone()).collect();
                    (st.id.clone(), keys, st.outcome.clone())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(&ru_s),
            ids(&en_s),
            "{} and its English twin differ",
            ru.display()
        );
        let fields = |s: &callhelper_script::Script| {
            s.fields
                .iter()
                .map(|f| {
                    (
                        f.id.clone(),
                        f.kind,
                        f.options
                            .iter()
                            .map(|o| o.value().to_owned())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(&ru_s), fields(&en_s));
        pairs += 1;
    }
    assert!(pairs >= 5, "five scenarios in two languages");
}

#[test]
fn yaml_model_json_model_round_trips() {
    for file in example_files() {
        let loaded = load_bytes(&std::fs::read(&file).expect("readable"), Dialect::Yaml);
        let first = loaded.script.expect("loads");
        let json = serde_json::to_string_pretty(&first).expect("serialises");
        let again = load_str(&json, Dialect::Json);
        assert!(again.diagnostics.is_empty(), "{:#?}", again.diagnostics);
        let second = again.script.expect("the JSON loads");
        assert_eq!(
            serde_json::to_value(&first).expect("json"),
            serde_json::to_value(&second).expect("json"),
            "{}",
            file.display()
        );
        // And the JSON text lints as clean as the YAML.
        let (_, diags) = check(json.as_bytes(), Dialect::Json);
        assert!(diags.is_empty(), "{}: {diags:#?}", file.display());
    }
}

/// Every key the model writes must be a property the schema declares at that place.
fn conforms(value: &Json, schema: &Json, root: &Json, path: &str) -> Result<(), String> {
    let schema = resolve(schema, root);
    if let Some(c) = schema.get("const") {
        return (c == value)
            .then_some(())
            .ok_or(format!("{path}: {value} is not {c}"));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Json::as_array) {
            return alts
                .iter()
                .find(|alt| conforms(value, alt, root, path).is_ok())
                .map(|_| ())
                .ok_or(format!("{path}: no alternative of {key} fits {value}"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        _ => vec![],
    };
    let kind = match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let type_ok = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !type_ok {
        return Err(format!("{path}: a {kind} where the schema wants {types:?}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Json::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Json::Object(map) => {
            let props = schema.get("properties").and_then(Json::as_object);
            for (k, v) in map {
                let sub = props
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
                    .ok_or(format!("{path}: the schema has no property `{k}`"))?;
                conforms(v, sub, root, &format!("{path}.{k}"))?;
            }
            if let Some(req) = schema.get("required").and_then(Json::as_array) {
                for r in req.iter().filter_map(Json::as_str) {
                    if !map.contains_key(r) {
                        return Err(format!("{path}: `{r}` is required by the schema"));
                    }
                }
            }
            Ok(())
        }
        Json::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    conforms(v, item, root, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn resolve<'a>(schema: &'a Json, root: &'a Json) -> &'a Json {
    match schema.get("$ref").and_then(Json::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().expect("a ref has a name");
            resolve(&root["$defs"][name], root)
        }
        None => schema,
    }
}

#[test]
fn the_schema_describes_every_example() {
    let schema = json_schema();
    assert_eq!(schema["title"], "CallHelper call script");
    assert_eq!(schema["additionalProperties"], false);
    for file in example_files() {
        let script = load_bytes(&std::fs::read(&file).expect("readable"), Dialect::Yaml)
            .script
            .expect("loads");
        let value = serde_json::to_value(&script).expect("json");
        conforms(&value, &schema, &schema, "$")
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    // The check itself can fail: an unknown key is caught.
    let mut bad = serde_json::to_value(
        load_bytes(
            &std::fs::read(&example_files()[0]).expect("readable"),
            Dialect::Yaml,
        )
        .script
        .expect("loads"),
    )
    .expect("json");
    bad["steps"][0]["colour"] = Json::String("red".into());
    assert!(conforms(&bad, &schema, &schema, "$").is_err());
}

#[test]
fn the_published_schema_is_up_to_date() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/script-schema.json");
    let published: Json = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("docs/script-schema.json exists"),
    )
    .expect("valid JSON");
    assert_eq!(
        published,
        json_schema(),
        "run `cargo xtask codegen` to regenerate docs/script-schema.json"
    );
}
