//! Unit tests of the model derive's inner function: what it accepts, what it rejects and how
//! many errors one input produces (all of them, in one pass).

use quote::quote;

use crate::expand::derive_model;

/// The `compile_error!` messages in an expansion.
fn errors(input: proc_macro2::TokenStream) -> Vec<String> {
    let out = derive_model(input).to_string();
    out.split("compile_error !")
        .skip(1)
        .map(|s| {
            let body = &s[s.find('"').map_or(0, |i| i + 1)..];
            let mut end = 0;
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = i;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            body[..end].to_owned()
        })
        .collect()
}

#[test]
fn valid_model_expands_without_errors() {
    let out = derive_model(quote! {
        #[model(index(email, unique))]
        pub struct User { #[model(primary_key, generated)] pub id: i64, pub email: String }
    })
    .to_string();
    assert!(!out.contains("compile_error"), "{out}");
    assert!(out.contains("\"users\""), "default table name: {out}");
    assert!(out.contains("\"users_email_key\""), "default index name: {out}");
    assert!(out.contains("const EMAIL"), "field handle: {out}");
}

#[test]
fn every_mistake_is_reported_in_one_pass() {
    let errs = errors(quote! {
        #[model(index(nme))]
        pub struct Post {
            #[model(primary_key, generated)] pub id: i64,
            #[model(generated)] pub title: String,
            #[model(created_at, updated_at)] pub stamp: i64,
            #[model(column = "title")] pub other: String,
        }
    });
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn missing_primary_key_is_an_error_naming_the_fix() {
    let errs = errors(quote! { struct User { id: i64 } });
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("has no primary key") && errs[0].contains("#[model(primary_key)]"), "{errs:?}");
}

#[test]
fn unknown_index_field_suggests_the_closest_name() {
    let errs = errors(quote! {
        #[model(index(emial))]
        struct User { #[model(primary_key)] id: i64, email: String }
    });
    assert!(errs[0].contains("did you mean `email`?"), "{errs:?}");
}

#[test]
fn generic_models_are_rejected() {
    let errs = errors(quote! { struct Wrapper<T> { #[model(primary_key)] id: T } });
    assert!(errs[0].contains("cannot be generic"), "{errs:?}");
}

#[test]
fn tuple_structs_are_rejected() {
    let errs = errors(quote! { struct Pair(i64, i64); });
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn negative_and_string_defaults_parse() {
    let out = derive_model(quote! {
        struct T { #[model(primary_key)] id: i64, #[model(default = -3)] a: i32, #[model(default = "x")] b: String }
    })
    .to_string();
    assert!(out.contains("DefaultValue :: Int (- 3i64)") || out.contains("DefaultValue :: Int (-3i64)"), "{out}");
    assert!(out.contains("DefaultValue :: Str (\"x\")"), "{out}");
}

#[test]
fn partition_rules_report_each_mistake() {
    // Key and unique indexes without the partition column; a plain index is fine.
    let errs = errors(quote! {
        #[model(index(email, unique), index(kind), index(kind, created_at, unique),
                partition(range(created_at), every = "1 month"))]
        pub struct Event {
            #[model(primary_key)] pub id: i64,
            pub created_at: DateTime<Utc>,
            #[model(unique)] pub slug: String,
            pub email: String,
            pub kind: String,
        }
    });
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].contains("primary key of a partitioned model must include the partition column `created_at`"));
    assert!(errs[0].contains("primary_key(id, created_at)"), "{}", errs[0]);
    assert!(errs[1].contains("unique index") && errs[1].contains("index(slug, created_at, unique)"), "{}", errs[1]);
    assert!(errs[2].contains("index(email, created_at, unique)"), "{}", errs[2]);

    let bad = |attr: proc_macro2::TokenStream| {
        errors(quote! {
            #[model(primary_key(id, created_at), #attr)]
            pub struct E { pub id: i64, pub created_at: DateTime<Utc> }
        })
    };
    let e = bad(quote!(partition(range(created), every = "1 month")));
    assert!(
        e.len() == 1 && e[0].contains("`created`, which is not a field") && e[0].contains("did you mean `created_at`"),
        "{e:?}"
    );
    let e = bad(quote!(partition(range(created_at), every = "1 fortnight")));
    assert!(e.len() == 1 && e[0].contains("unknown partition interval unit \\\"fortnight\\\""), "{e:?}");
    let e = bad(quote!(partition(range(created_at))));
    assert!(e.len() == 1 && e[0].contains("needs the width of one partition"), "{e:?}");
    let e = bad(quote!(partition(hash(id, modulus = 1))));
    assert!(e.iter().any(|m| m.contains("from 2 to 1024")), "{e:?}");
    let e = bad(quote!(partition(hash(id))));
    assert!(e.iter().any(|m| m.contains("modulus = 8")), "{e:?}");
    let e = bad(quote!(partition(list(created_at), every = "1 day")));
    assert!(e.len() == 1 && e[0].contains("`every` applies to range partitioning only"), "{e:?}");
    let e = bad(quote!(partition(range(created_at), every = "1 day", retain = "soon")));
    assert!(e.len() == 1 && e[0].contains("retain = \\\"12 months\\\""), "{e:?}");
    let e = bad(quote!(partition(range(created_at), every = 100, retain = "1 day")));
    assert!(e.iter().any(|m| m.contains("`retain` is a time bound")), "{e:?}");
    let e = bad(quote!(partition(list(created_at), values("a-b", "a_b"))));
    assert!(e.len() == 1 && e[0].contains("would be named `es_v_a_b`"), "{e:?}");
    let e = bad(quote!(partition(range(created_at), list(id), every = "1 day")));
    assert!(e.iter().any(|m| m.contains("partitioned one way")), "{e:?}");
    assert!(
        bad(quote!(partition(range(created_at), every = "1 month", ahead = 2, retain = "1 year", archive = "old")))
            .is_empty()
    );
}

#[test]
fn hooks_are_wired_only_when_declared() {
    let plain = derive_model(quote! {
        pub struct User { #[model(primary_key)] pub id: i64, pub email: String }
    })
    .to_string();
    // A model without `hooks` gets no hook code: the default (no-op) `run_hook`, a constant
    // `HAS_HOOKS = false`, and a decoder that does not call `after_load`.
    for word in ["Hooks", "HAS_HOOKS", "run_hook", "after_load", "copy_for_hooks"] {
        assert!(!plain.contains(word), "{word} in {plain}");
    }
    let hooked = derive_model(quote! {
        #[model(hooks)]
        pub struct User { #[model(primary_key)] pub id: i64, pub email: String }
    })
    .to_string();
    assert!(!hooked.contains("compile_error"), "{hooked}");
    for word in ["const HAS_HOOKS : bool = true", "fn run_hook", "after_load (& mut __row)", "fn copy_for_hooks"] {
        assert!(hooked.contains(word), "{word} missing from {hooked}");
    }
}
