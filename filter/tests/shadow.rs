//! Shadow traffic's comparison: two answers to one request, the parts and
//! the JSON fields where they differ, the noise that two answers of the
//! stable cluster show, and the per-split table of field series.

use turnout::shadow::{
    compare, noisy_fields, Answer, BodyCompare, ComparePlan, Comparison, FieldTable, Outcome, Part,
    Pattern, Segment, Slot, MAX_FIELDS, MAX_FIELDS_PER_PAIR,
};

const JSON: &[(&[u8], &[u8])] = &[(b"content-type", b"application/json")];

fn answer(status: u16, body: &str) -> Answer<'_> {
    Answer {
        status,
        headers: JSON,
        body: body.as_bytes(),
    }
}

fn plan(ignore: &[&str]) -> ComparePlan {
    ComparePlan {
        ignore: ignore.iter().map(|p| Pattern::parse(p).unwrap()).collect(),
        ..ComparePlan::default()
    }
}

fn bodies(plan: &ComparePlan, stable: &str, copy: &str) -> Comparison {
    compare(plan, &answer(200, stable), &answer(200, copy), None)
}

fn matched(c: &Comparison) {
    assert_eq!(c.outcome, Outcome::Match, "{c:?}");
    assert!(c.parts.is_empty() && c.fields.is_empty(), "{c:?}");
}

#[test]
fn equal_json_matches_whatever_its_layout() {
    let p = plan(&[]);
    let stable = r#"{"id": 7, "name": "ada", "items": [{"price": 2, "qty": 1}]}"#;
    matched(&bodies(&p, stable, stable));
    // Key order and whitespace.
    matched(&bodies(
        &p,
        stable,
        "{\n  \"items\":[ {\"qty\":1,\"price\":2} ],\"name\":\"ada\",\n\"id\":7}",
    ));
    // A number's spelling.
    matched(&bodies(
        &p,
        r#"{"a": 2, "b": 100, "c": -0.5}"#,
        r#"{"a": 2.0, "b": 1e2, "c": -5e-1}"#,
    ));
    matched(&bodies(
        &p,
        "[18446744073709551615]",
        "[18446744073709551615]",
    ));
}

#[test]
fn ignored_fields_do_not_count() {
    let p = plan(&["/request_id", "/items/*/updated_at"]);
    matched(&bodies(
        &p,
        r#"{"request_id": "a1", "items": [{"id": 1, "updated_at": "09:00"}, {"id": 2, "updated_at": "09:01"}]}"#,
        r#"{"request_id": "b2", "items": [{"id": 1, "updated_at": "10:00"}, {"id": 2}]}"#,
    ));
    // Only those: the same change elsewhere still counts.
    let c = bodies(
        &p,
        r#"{"meta": {"request_id": 1}}"#,
        r#"{"meta": {"request_id": 2}}"#,
    );
    assert_eq!(c.fields, ["/meta/request_id"]);
}

#[test]
fn changed_fields_are_named_folded_once_each() {
    let c = bodies(
        &plan(&[]),
        r#"{"name": "ada", "items": [{"id": 1, "price": 2}, {"id": 2, "price": 3}, {"id": 3, "price": 4}]}"#,
        r#"{"name": "bob", "items": [{"id": 1, "price": 2}, {"id": 2, "price": 5}, {"id": 3, "price": 6}]}"#,
    );
    assert_eq!(c.outcome, Outcome::Mismatch);
    assert_eq!(c.parts, [Part::Body]);
    assert_eq!(c.fields, ["/items/*/price", "/name"]);
}

#[test]
fn missing_keys_type_changes_and_lengths() {
    let p = plan(&[]);
    let c = bodies(
        &p,
        r#"{"a": 1, "b": {"c": 1}}"#,
        r#"{"b": {"c": 1, "d": null}, "e": 0}"#,
    );
    assert_eq!(c.fields, ["/a", "/b/d", "/e"]);
    let c = bodies(
        &p,
        r#"{"a": "1", "b": null, "c": [], "d": true}"#,
        r#"{"a": 1, "b": 0, "c": {}, "d": "true"}"#,
    );
    assert_eq!(c.fields, ["/a", "/b", "/c", "/d"]);
    // Extra indices, on either side, are one field: the array's.
    let c = bodies(&p, r#"{"items": [1, 2]}"#, r#"{"items": [1, 2, 3, 4, 5]}"#);
    assert_eq!(c.fields, ["/items/*"]);
    let c = bodies(&p, r#"[{"a": 1}, {"a": 2}]"#, r#"[{"a": 1}]"#);
    assert_eq!(c.fields, ["/*"]);
    // The top level itself is the empty pointer.
    assert_eq!(bodies(&p, "1", "2").fields, [""]);
    assert_eq!(bodies(&p, "{}", "[]").fields, [""]);
}

#[test]
fn pointer_escapes_and_wildcards() {
    let p = plan(&["/a~1b/~0c", "/*/skip", "/list/1"]);
    matched(&bodies(
        &p,
        r#"{"a/b": {"~c": 1}, "x": {"skip": 1}, "y": {"skip": 2}, "list": [0, 1, 2]}"#,
        r#"{"a/b": {"~c": 2}, "x": {"skip": 3}, "y": {"skip": 4}, "list": [0, 9, 2]}"#,
    ));
    // Reported keys are escaped back.
    let c = bodies(&plan(&[]), r#"{"a/b": {"~c": 1}}"#, r#"{"a/b": {"~c": 2}}"#);
    assert_eq!(c.fields, ["/a~1b/~0c"]);
    // An index segment matches index 1 and a key "1", not index 10 or "01".
    let p = plan(&["/list/1"]);
    assert_eq!(
        bodies(
            &p,
            r#"{"list": [0,0,0,0,0,0,0,0,0,0,0]}"#,
            r#"{"list": [0,1,0,0,0,0,0,0,0,0,2]}"#
        )
        .fields,
        ["/list/*"]
    );
    matched(&bodies(
        &p,
        r#"{"list": {"1": 1}}"#,
        r#"{"list": {"1": 2}}"#,
    ));
    // An extra index that is ignored leaves the next extra one to name the array.
    let p = plan(&["/list/2"]);
    matched(&bodies(&p, "{\"list\": [0, 1]}", "{\"list\": [0, 1, 2]}"));
    assert_eq!(
        bodies(&p, "{\"list\": [0, 1]}", "{\"list\": [0, 1, 2, 3]}").fields,
        ["/list/*"]
    );
}

#[test]
fn patterns_follow_rfc_6901() {
    let p = Pattern::parse("/a~1b/*/~0/0/01").unwrap();
    assert_eq!(p.as_str(), "/a~1b/*/~0/0/01");
    let key = |k: &str, index| Segment::Token {
        key: k.into(),
        index,
    };
    assert_eq!(
        p.segments(),
        [
            key("a/b", None),
            Segment::Any,
            key("~", None),
            key("0", Some(0)),
            key("01", None)
        ]
    );
    assert!(Pattern::parse("")
        .unwrap_err()
        .contains("\"body\": \"none\""));
    assert!(Pattern::parse("a/b")
        .unwrap_err()
        .contains("does not start with '/'"));
    assert!(Pattern::parse("/a~2")
        .unwrap_err()
        .contains("'~' is not followed by 0 or 1"));
    assert!(Pattern::parse("/a~").is_err());
    assert_eq!(Pattern::parse("/").unwrap().segments(), [key("", None)]);
}

#[test]
fn status_and_headers() {
    let p = plan(&[]);
    let c = compare(&p, &answer(500, "{}"), &answer(200, "{}"), None);
    assert_eq!(
        (c.outcome, c.parts.as_slice()),
        (Outcome::Mismatch, &[Part::Status][..])
    );
    assert!(c.fields.is_empty());
    let unchecked = ComparePlan {
        status: false,
        ..plan(&[])
    };
    matched(&compare(
        &unchecked,
        &answer(500, "{}"),
        &answer(200, "{}"),
        None,
    ));

    let with = |headers: &'static [(&'static [u8], &'static [u8])]| Answer {
        status: 200,
        headers,
        body: b"{}",
    };
    let stable = with(&[(b"Content-Type", b"application/json"), (b"x-id", b"1")]);
    // Names in any case; other headers are not compared.
    matched(&compare(
        &p,
        &stable,
        &with(&[(b"content-type", b"application/json")]),
        None,
    ));
    let c = compare(&p, &stable, &with(&[(b"content-type", b"text/html")]), None);
    assert_eq!(
        (c.parts.as_slice(), c.headers.as_slice()),
        (&[Part::Header][..], &["content-type".to_string()][..])
    );
    // Missing on one side differs; on both, it does not.
    assert_eq!(compare(&p, &stable, &with(&[]), None).parts, [Part::Header]);
    matched(&compare(&p, &with(&[]), &with(&[]), None));
}

#[test]
fn bodies_that_are_not_json_compare_as_bytes() {
    let p = plan(&[]);
    let c = bodies(&p, "<html>a</html>", "<html>b</html>");
    assert_eq!((c.parts.as_slice(), c.fields.len()), (&[Part::Body][..], 0));
    // One side JSON is not enough.
    let c = bodies(&p, r#"{"a": 1}"#, "oops");
    assert_eq!((c.parts.as_slice(), c.fields.len()), (&[Part::Body][..], 0));
    matched(&bodies(&p, "", ""));
    let bytes = ComparePlan {
        body: BodyCompare::Bytes,
        ..plan(&[])
    };
    assert_eq!(
        bodies(&bytes, r#"{"a": 2}"#, r#"{"a": 2.0}"#).parts,
        [Part::Body]
    );
    assert!(bodies(&bytes, r#"{"a": 2}"#, r#"{"a": 2.0}"#)
        .fields
        .is_empty());
    matched(&bodies(&bytes, "same", "same"));
    let none = ComparePlan {
        body: BodyCompare::None,
        ..plan(&[])
    };
    matched(&bodies(&none, "a", "b"));
}

#[test]
fn noise_is_not_a_mismatch_but_a_difference_beside_it_is() {
    let p = plan(&[]);
    let stable = answer(
        200,
        r#"{"ts": 1, "id": "x1", "price": 10, "rows": [{"at": 1, "v": 1}]}"#,
    );
    let second = answer(
        200,
        r#"{"ts": 2, "id": "x1", "price": 10, "rows": [{"at": 2, "v": 1}]}"#,
    );
    // ts and rows/*/at differ between two answers of stable: noise.
    assert_eq!(
        noisy_fields(&p, stable.body, second.body),
        ["/rows/*/at", "/ts"]
    );
    let copy = answer(
        200,
        r#"{"ts": 3, "id": "x1", "price": 11, "rows": [{"at": 3, "v": 1}]}"#,
    );
    let c = compare(&p, &stable, &copy, Some(&second));
    assert_eq!(c.outcome, Outcome::Mismatch);
    assert_eq!(c.fields, ["/price"]);
    assert_eq!(c.noise_fields, ["/rows/*/at", "/ts"]);
    // Without the second answer the noise counts.
    assert_eq!(
        compare(&p, &stable, &copy, None).fields,
        ["/price", "/rows/*/at", "/ts"]
    );
    // Nothing left but noise: a match, and the noise still reported.
    let copy = answer(
        200,
        r#"{"ts": 3, "id": "x1", "price": 10, "rows": [{"at": 9, "v": 1}]}"#,
    );
    let c = compare(&p, &stable, &copy, Some(&second));
    matched(&c);
    assert_eq!(c.noise_fields, ["/rows/*/at", "/ts"]);
    // A noisy subtree covers what is under it, not its neighbours.
    let stable = answer(200, r#"{"a": {"b": 1}, "ab": 1}"#);
    let second = answer(200, r#"{"a": null, "ab": 1}"#);
    let copy = answer(200, r#"{"a": {"b": 2}, "ab": 2}"#);
    assert_eq!(compare(&p, &stable, &copy, Some(&second)).fields, ["/ab"]);
}

#[test]
fn noise_of_status_headers_and_whole_bodies() {
    let p = plan(&[]);
    // Stable itself answers 200 then 503: the copy's status is noise.
    let c = compare(
        &p,
        &answer(200, "{}"),
        &answer(503, "{}"),
        Some(&answer(503, "{}")),
    );
    matched(&c);
    // Stable's bodies differ as bytes: the whole body is noise.
    let c = compare(
        &p,
        &answer(200, "a"),
        &answer(200, "c"),
        Some(&answer(200, "b")),
    );
    matched(&c);
    assert_eq!(c.noise_fields, [""]);
    // Identical stable answers: no noise, the copy's difference stands.
    let c = compare(
        &p,
        &answer(200, "a"),
        &answer(200, "c"),
        Some(&answer(200, "a")),
    );
    assert_eq!((c.outcome, c.noise_fields.len()), (Outcome::Mismatch, 0));
}

#[test]
fn hostile_bodies_neither_panic_nor_grow_without_bound() {
    let p = plan(&["/x/*"]);
    // As deep as serde_json parses (128), and deeper (not JSON to it: bytes).
    for depth in [127, 128, 129, 100_000] {
        let a = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let b = format!("{}2{}", "[".repeat(depth), "]".repeat(depth));
        let c = bodies(&p, &a, &b);
        assert_eq!(c.outcome, Outcome::Mismatch, "{depth}");
    }
    let a = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let b = format!("{}2{}", "[".repeat(120), "]".repeat(120));
    assert_eq!(bodies(&plan(&[]), &a, &b).fields, ["/*".repeat(120)]);
    // Ten thousand keys that differ: named up to the cap, still a mismatch
    // even if every named one is noise.
    let keys = |v: u8| {
        let fields: Vec<String> = (0..10_000).map(|i| format!("\"k{i}\": {v}")).collect();
        format!("{{{}}}", fields.join(","))
    };
    let (stable, copy) = (keys(1), keys(2));
    let c = bodies(&plan(&[]), &stable, &copy);
    assert_eq!(c.fields.len(), MAX_FIELDS_PER_PAIR);
    let second = keys(3);
    let c = compare(
        &plan(&[]),
        &answer(200, &stable),
        &answer(200, &copy),
        Some(&answer(200, &second)),
    );
    assert_eq!(c.outcome, Outcome::Mismatch);
    assert_eq!(c.parts, [Part::Body]);
    // A long array whose every element differs is one field.
    let list = |v: u8| format!("[{}]", vec![format!("{{\"p\": {v}}}"); 50_000].join(","));
    assert_eq!(bodies(&plan(&[]), &list(1), &list(2)).fields, ["/*/p"]);
}

#[test]
fn the_field_table_names_64_fields_then_other() {
    let mut table = FieldTable::new();
    assert_eq!(
        table.slot("/a"),
        Slot {
            index: 0,
            new: true
        }
    );
    assert_eq!(
        table.slot("/a"),
        Slot {
            index: 0,
            new: false
        }
    );
    // The same label is the same slot: a dot cannot be in a name.
    assert_eq!(
        table.slot("/a.b"),
        Slot {
            index: 1,
            new: true
        }
    );
    assert_eq!(
        table.slot("/a_b"),
        Slot {
            index: 1,
            new: false
        }
    );
    assert_eq!(table.label(1), "/a_b");
    assert_eq!(
        table.slot(""),
        Slot {
            index: 2,
            new: true
        }
    );
    assert_eq!(table.label(2), "_root");
    for i in 3..MAX_FIELDS {
        assert_eq!(
            table.slot(&format!("/f{i}")),
            Slot {
                index: i,
                new: true
            }
        );
    }
    // The 65th distinct field, and every one after it.
    assert_eq!(
        table.slot("/f64"),
        Slot {
            index: MAX_FIELDS,
            new: true
        }
    );
    assert_eq!(
        table.slot("/f65"),
        Slot {
            index: MAX_FIELDS,
            new: false
        }
    );
    assert_eq!(table.label(MAX_FIELDS), "_other");
    assert_eq!(table.len(), 64);
    // Known fields keep their slots.
    assert_eq!(
        table.slot("/f63"),
        Slot {
            index: 63,
            new: false
        }
    );
    // A pair counts each slot once, `_other` too.
    let mut fresh = FieldTable::new();
    let mut fields: Vec<String> = (0..70).map(|i| format!("/g{i}")).collect();
    fields.push("/g0".into());
    let slots = fresh.slots(&fields);
    assert_eq!(slots.len(), 65);
    assert!(slots.iter().all(|s| s.new));
    assert_eq!(
        slots.last(),
        Some(&Slot {
            index: MAX_FIELDS,
            new: true
        })
    );
    assert!(fresh.slots(&["/g69", "/g1"]).iter().all(|s| !s.new));
}
