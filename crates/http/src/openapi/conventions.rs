//! What the conventions of every route mean for the document, written in once rather than on
//! each route: the errors any operation may answer, resources read back as whole objects, and
//! PATCH bodies as merge patches.

use serde_json::{Map, Value, json};

/// The document, with the shared conventions written into every operation.
pub fn apply(mut document: Value) -> Value {
    add_shared_responses(&mut document);
    let schemas = document["components"]["schemas"].take();
    let mut schemas = match schemas {
        Value::Object(schemas) => schemas,
        _ => Map::new(),
    };
    let drafts = schemas.clone();
    for schema in schemas.values_mut() {
        flatten_resources(schema, &drafts);
    }
    add_patch_bodies(&mut document, &mut schemas);
    document["components"]["schemas"] = Value::Object(schemas);
    let paths = document["paths"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let paths = paths
        .into_iter()
        .map(|(path, mut item)| {
            for (method, operation) in item.as_object_mut().into_iter().flatten() {
                if METHODS.contains(&method.as_str()) {
                    document_errors(&path, method, operation);
                }
            }
            (path, item)
        })
        .collect();
    document["paths"] = Value::Object(paths);
    link_created_resources(&mut document);
    document
}

/// What a POST creates is read, changed and removed at its id's path: the 201 answer links
/// there (`id` from its body), so clients and fuzzers can walk create → read → update → delete.
fn link_created_resources(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let on_ids: Vec<(String, Vec<(String, String)>)> = paths
        .iter()
        .filter_map(|(path, item)| {
            let collection = path.strip_suffix("/{id}")?;
            let operations = METHODS
                .iter()
                .filter_map(|method| Some((method.to_string(), item[*method]["operationId"].as_str()?.to_owned())))
                .collect();
            Some((collection.to_owned(), operations))
        })
        .collect();
    for (collection, operations) in on_ids {
        let Some(created) = paths
            .get_mut(&collection)
            .and_then(|item| item.pointer_mut("/post/responses/201"))
        else {
            continue;
        };
        let links: Map<String, Value> = operations
            .into_iter()
            .map(|(method, operation_id)| {
                let name = format!("{}{}", method[..1].to_uppercase(), &method[1..]);
                (
                    name,
                    json!({"operationId": operation_id, "parameters": {"id": "$response.body#/id"}}),
                )
            })
            .collect();
        created["links"] = Value::Object(links);
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The problems shared by many operations, each a named response.
const SHARED: [(&str, &str, &str); 9] = [
    ("400", "MalformedJson", "`malformed_json`: the body is not JSON"),
    (
        "401",
        "Unauthorized",
        "`unauthorized`: no key, or a key that is unknown or revoked",
    ),
    (
        "403",
        "Forbidden",
        "`forbidden`: the key lacks the scope, or acts outside its channel",
    ),
    (
        "404",
        "NotFound",
        "`not_found`: nothing has this id (or the key may not see it)",
    ),
    (
        "409",
        "Conflict",
        "`conflict`: the state allows no such change, or a request with this `Idempotency-Key` is still running",
    ),
    (
        "412",
        "VersionMismatch",
        "`version_mismatch`: `If-Match` names an older version",
    ),
    (
        "413",
        "PayloadTooLarge",
        "`payload_too_large`: the body is over the limit",
    ),
    (
        "422",
        "ValidationFailed",
        "`validation_failed` (the fields in `errors`) or `idempotency_key_reused`",
    ),
    (
        "429",
        "RateLimited",
        "`rate_limited`: too many at once; try again later",
    ),
];

fn add_shared_responses(document: &mut Value) {
    let responses = &mut document["components"]["responses"];
    for (_, name, description) in SHARED {
        responses[name] = json!({
            "description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        });
    }
}

/// Names the problems an operation may answer by its shape: a key (401, 403), an id in the
/// path (404), a body (400, 413, 422), parameters (422), `If-Match` (412), a POST under
/// the API with its `Idempotency-Key` (409, 422).
fn document_errors(path: &str, method: &str, operation: &mut Value) {
    let public = operation["security"].as_array().is_some_and(Vec::is_empty);
    let has_body = operation.get("requestBody").is_some();
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let named = |name: &str| parameters.iter().any(|p| p["name"] == name);
    let mut codes = Vec::new();
    if !public {
        codes.extend(["401", "403"]);
    }
    if path.contains('{') {
        codes.push("404");
    }
    if has_body {
        codes.extend(["400", "413", "422"]);
    }
    if !parameters.is_empty() {
        codes.push("422");
    }
    // A query parameter naming a resource (`?location_id=`) may name none.
    if parameters
        .iter()
        .any(|p| p["in"] == "query" && p["name"].as_str().is_some_and(|n| n.ends_with("_id")))
    {
        codes.push("404");
    }
    if named("If-Match") {
        codes.push("412");
        for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
            if parameter["name"] == "If-Match" {
                parameter["schema"]["minimum"] = json!(1);
            }
        }
    }
    // Any change may meet a state that forbids it; a POST's `Idempotency-Key` may be in use.
    if method != "get" && path.starts_with("/api/v1/") {
        codes.extend(["409", "422"]);
    }
    let responses = &mut operation["responses"];
    for code in codes {
        if responses.get(code).is_none() {
            let name = SHARED.iter().find(|(c, ..)| *c == code).map(|(_, name, _)| *name);
            if let Some(name) = name {
                responses[code] = json!({"$ref": format!("#/components/responses/{name}")});
            }
        }
    }
}

/// Every resource in `schema` (itself, or inside it, such as the items of a list), flattened.
fn flatten_resources(schema: &mut Value, drafts: &Map<String, Value>) {
    match schema {
        Value::Object(fields) if fields.contains_key("allOf") => flatten_resource(schema, drafts),
        Value::Object(fields) => fields.values_mut().for_each(|inner| flatten_resources(inner, drafts)),
        Value::Array(items) => items.iter_mut().for_each(|inner| flatten_resources(inner, drafts)),
        _ => {}
    }
}

/// A resource is its draft and the fields the server adds (`allOf: [Draft, {id, version…}]`).
/// A draft refuses unknown fields, which would make every answer break its own schema: the
/// resource is written out as one object of both parts' fields instead.
fn flatten_resource(schema: &mut Value, drafts: &Map<String, Value>) {
    let Some(parts) = schema["allOf"].as_array() else {
        return;
    };
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        let part = match part["$ref"].as_str() {
            Some(reference) => referenced(reference, drafts).unwrap_or(&Value::Null),
            None => part,
        };
        if let Some(fields) = part["properties"].as_object() {
            properties.extend(fields.clone());
        }
        for field in part["required"].as_array().into_iter().flatten() {
            if !required.contains(field) {
                required.push(field.clone());
            }
        }
    }
    let mut merged = json!({"type": "object", "properties": properties, "required": required});
    if let Some(description) = schema.get("description") {
        merged["description"] = description.clone();
    }
    *schema = merged;
}

fn referenced<'a>(reference: &str, schemas: &'a Map<String, Value>) -> Option<&'a Value> {
    schemas.get(reference.strip_prefix("#/components/schemas/")?)
}

/// A PATCH body is a JSON Merge Patch (RFC 7396) of the resource's draft: every field may be
/// left out, at any depth, and any other member may be `null` (removing what is not there
/// changes nothing). Each draft gets its own schema, `<Draft>Patch`.
fn add_patch_bodies(document: &mut Value, schemas: &mut Map<String, Value>) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let body = item
            .pointer_mut("/patch/requestBody/content/application~1json/schema")
            .filter(|body| body.get("$ref").is_some());
        if let Some(body) = body {
            patch_of(body, schemas);
        }
    }
}

/// Points `schema` (a `$ref` to an object, possibly beside `null`) at its patch, made once.
fn patch_of(schema: &mut Value, schemas: &mut Map<String, Value>) {
    if let Some(choices) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        choices.iter_mut().for_each(|choice| patch_of(choice, schemas));
        return;
    }
    let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    else {
        return;
    };
    let patch_name = format!("{name}Patch");
    if !schemas.contains_key(&patch_name) {
        let Some(mut patch) = schemas.get(name).filter(|s| s.get("properties").is_some()).cloned() else {
            return;
        };
        // Taken before the fields are walked: a schema that contains itself ends here.
        schemas.insert(patch_name.clone(), Value::Null);
        let mut required = Vec::new();
        if let Some(fields) = patch.as_object_mut() {
            required = fields
                .remove("required")
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default();
            fields.insert("additionalProperties".into(), json!({"type": "null"}));
        }
        for (name, field) in patch["properties"].as_object_mut().into_iter().flatten() {
            patch_of(field, schemas);
            // `null` removes a member: a field that may be left out goes back to its default.
            if !required.iter().any(|r| r == name.as_str()) {
                nullable(field);
            }
        }
        schemas.insert(patch_name.clone(), patch);
    }
    *schema = json!({"$ref": format!("#/components/schemas/{patch_name}")});
}

/// `schema`, or `null`.
fn nullable(schema: &mut Value) {
    match schema.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = kind.clone();
            schema["type"] = json!([kind, "null"]);
        }
        Some(Value::Array(kinds)) => {
            if !kinds.iter().any(|k| k == "null") {
                kinds.push(json!("null"));
            }
        }
        _ => {
            let choices = schema.get("oneOf").and_then(Value::as_array);
            if !choices.is_some_and(|c| c.iter().any(|c| c["type"] == "null")) {
                *schema = json!({"oneOf": [schema.take(), {"type": "null"}]});
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_reads_as_one_object_of_its_drafts_and_its_own_fields() {
        let drafts = json!({"ChannelDraft": {"type": "object", "additionalProperties": false,
            "required": ["name"], "properties": {"name": {"type": "string"}}}});
        let mut channel = json!({"allOf": [{"$ref": "#/components/schemas/ChannelDraft"},
            {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}]});
        flatten_resources(&mut channel, drafts.as_object().unwrap());
        assert_eq!(channel["required"], json!(["name", "id"]));
        assert!(channel["properties"]["name"].is_object() && channel["properties"]["id"].is_object());
        assert!(channel.get("additionalProperties").is_none());
    }

    #[test]
    fn operations_name_the_problems_their_shape_allows() {
        let mut patch = json!({"parameters": [{"name": "If-Match"}], "requestBody": {}, "responses": {"200": {}}});
        document_errors("/api/v1/channels/{id}", "patch", &mut patch);
        let codes: Vec<&String> = patch["responses"].as_object().unwrap().keys().collect();
        for code in ["200", "400", "401", "403", "404", "412", "413", "422"] {
            assert!(codes.iter().any(|c| *c == code), "{code} in {codes:?}");
        }
        let mut public = json!({"security": [], "responses": {"200": {}}});
        document_errors("/healthz", "get", &mut public);
        assert_eq!(public["responses"].as_object().unwrap().len(), 1);
    }
}
