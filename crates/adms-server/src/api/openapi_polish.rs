//! What the rendered OpenAPI document gets after utoipa wrote it, for the generators and
//! readers that use it: a `title` on every `oneOf`/`anyOf` alternative (utoipa's `Ref` has no
//! title), and descriptions without rustdoc link syntax (doc comments become descriptions).
//!
//! Done on the JSON text through [`Json`], which keeps each object's key order, so the document
//! reads in utoipa's order.

use crate::ordered_json::Json;

/// The document `json` (utoipa's rendering) with titles and plain descriptions; `json` itself
/// if it does not parse (it always does: utoipa wrote it).
pub fn polish(json: &str) -> String {
    match serde_json::from_str::<Json>(json) {
        Ok(mut doc) => {
            name_alternatives(&mut doc, "Variant");
            plain_descriptions(&mut doc);
            serde_json::to_string(&doc).unwrap_or_else(|_| json.to_owned())
        }
        Err(_) => json.to_owned(),
    }
}

/// Gives every `oneOf`/`anyOf` alternative without one a `title`, so that client generators
/// name the types they make for them (`UserUpsert`, not `DeviceCommandType0`): a reference is
/// named after its schema, `null` is `Null`, an object tagged by a one-value `type` after that
/// value (`user_upsert` → `UserUpsert`), anything else after its parent and position. `parent`:
/// the title or component name of the schema being walked.
fn name_alternatives(value: &mut Json, parent: &str) {
    match value {
        Json::Object(entries) => {
            let own = entries.iter().find(|(k, _)| k == "title").and_then(|(_, v)| v.as_str());
            let parent = own.unwrap_or(parent).to_owned();
            for (key, child) in entries.iter_mut() {
                if let ("oneOf" | "anyOf", Json::Array(items)) = (key.as_str(), &mut *child) {
                    for (index, item) in items.iter_mut().enumerate() {
                        if let Json::Object(alternative) = item
                            && !alternative.iter().any(|(k, _)| k == "title")
                        {
                            let title = alternative_title(item, &parent, index);
                            if let Json::Object(alternative) = item {
                                alternative.push(("title".to_owned(), Json::String(title)));
                            }
                        }
                    }
                }
            }
            for (key, child) in entries.iter_mut() {
                match child {
                    // The components: each schema's name stands for its parent title.
                    Json::Object(schemas) if key == "schemas" => {
                        for (name, schema) in schemas.iter_mut() {
                            name_alternatives(schema, name);
                        }
                    }
                    _ => name_alternatives(child, &parent),
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|item| name_alternatives(item, parent)),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => {}
    }
}

fn alternative_title(alternative: &Json, parent: &str, index: usize) -> String {
    if let Some(target) = alternative.get("$ref").and_then(Json::as_str) {
        return target.rsplit('/').next().unwrap_or(target).to_owned();
    }
    if alternative.get("type").and_then(Json::as_str) == Some("null") {
        return "Null".to_owned();
    }
    let tag = match alternative.get("properties").and_then(|p| p.get("type")).and_then(|t| t.get("enum")) {
        Some(Json::Array(values)) if values.len() == 1 => values[0].as_str(),
        _ => None,
    };
    match tag {
        Some(tag) => pascal_case(tag),
        None => format!("{parent}{}", index + 1),
    }
}

/// `user_upsert` → `UserUpsert`, `attendance.punch` → `AttendancePunch`.
fn pascal_case(word: &str) -> String {
    word.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Rustdoc links in `description` and `summary` texts as plain text (see [`plain_text`]).
fn plain_descriptions(value: &mut Json) {
    match value {
        Json::Object(entries) => {
            for (key, child) in entries.iter_mut() {
                match child {
                    Json::String(text) if key == "description" || key == "summary" => *text = plain_text(text),
                    _ => plain_descriptions(child),
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(plain_descriptions),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => {}
    }
}

/// A description without rustdoc link syntax: `` [`x`] `` → `` `x` ``, `[text](path::to::item)`
/// → `text`, `[Type::item]` → `Type::item`. Links to web addresses and anchors stay, and so
/// does a bracket that is no link (`[ids]`, a JSON list).
pub fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            rest = &rest[open..];
            break;
        };
        let label = &after[..close];
        let tail = &after[close + 1..];
        let link = tail.strip_prefix('(').and_then(|t| t.find(')').map(|end| (&t[..end], &t[end + 1..])));
        if let Some((target, next)) = link {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#') {
                out.push_str(&rest[open..rest.len() - next.len()]);
            } else {
                out.push_str(label);
            }
            rest = next;
        } else if label.len() >= 2 && label.starts_with('`') && label.ends_with('`') || label.contains("::") {
            out.push_str(label);
            rest = tail;
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustdoc_links_become_plain_text_and_other_brackets_stay() {
        assert_eq!(plain_text("see [`Foo`] and [`bar`](crate::bar)."), "see `Foo` and `bar`.");
        assert_eq!(plain_text("[Store::open] or [the store](super::Store)"), "Store::open or the store");
        let kept = "`{\"terminals\": [ids]}`, [\"a\"], [spec](https://example.com), [up](#top), [";
        assert_eq!(plain_text(kept), kept);
    }

    #[test]
    fn alternatives_get_titles_and_keys_keep_their_order() {
        let doc = r##"{"openapi":"3.1.0","components":{"schemas":{"Cmd":{"oneOf":[
            {"type":"object","properties":{"type":{"type":"string","enum":["user_upsert"]}}},
            {"$ref":"#/components/schemas/Other"},{"type":"null"},{"type":"string"},
            {"type":"integer","title":"Mine"}]}}}}"##;
        let polished: serde_json::Value = serde_json::from_str(&polish(doc)).unwrap();
        let titles: Vec<&str> = polished["components"]["schemas"]["Cmd"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["UserUpsert", "Other", "Null", "Cmd4", "Mine"]);
        assert!(polish(doc).starts_with(r#"{"openapi":"3.1.0","components""#), "{}", polish(doc));
    }
}
