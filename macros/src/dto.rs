//! `#[model(dto(Name, ...))]`: data-transfer structs generated next to a model.
//!
//! - `dto(UserPublic, exclude(password_hash))` / `dto(UserCard, only(id, name))`: a read DTO,
//!   with `From<User>`.
//! - `dto(NewUser, create)`: every field but database-generated keys and automatic timestamps
//!   (`exclude(..)` may drop `Option` fields too), with `into_model()` and `insert(db)`.
//! - `dto(UserPatch, update)`: every field but the key, each optional; `apply(&mut user)` and
//!   `update(db, key)`, which writes only the fields that are set.
//!
//! DTOs derive `Debug`, `Clone`, serde's `Serialize`/`Deserialize` (rejecting unknown keys unless
//! the DTO says `allow_unknown_fields`), and, when the model has `#[validate]` rules,
//! `validator::Validate` with the fields' rules copied.

use darling::ast::NestedMeta;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::ir::{Auto, Model};

const DTO_HELP: &str = "help: the correct format looks like #[model(dto(UserPublic, exclude(password_hash)))], \
                        #[model(dto(NewUser, create))], #[model(dto(UserPatch, update))] \
                        or #[model(dto(UserPatch, update, allow_unknown_fields))]";

/// What kind of DTO.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A read view with `From<Model>`.
    Read,
    /// Input for creating a row.
    Create,
    /// A partial update.
    Update,
}

/// `dto(Name, kind, exclude(..) | only(..))` as written.
pub struct DtoAttr {
    /// The generated struct's name.
    pub name: syn::Ident,
    /// Its kind.
    pub kind: Kind,
    /// Fields left out.
    pub exclude: Vec<syn::Ident>,
    /// Fields kept (all others left out).
    pub only: Vec<syn::Ident>,
    /// Whether `only(..)` was given (an empty list is an error).
    pub has_only: bool,
    /// `allow_unknown_fields`: accept (and ignore) keys that are not fields when deserializing.
    /// By default a DTO rejects them, so `{"nmae": "x"}` is an error rather than an empty patch.
    pub allow_unknown: bool,
}

impl FromMeta for DtoAttr {
    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let mut errors = Error::accumulator();
        let name = match items.first() {
            Some(NestedMeta::Meta(syn::Meta::Path(p))) if p.get_ident().is_some() => p.get_ident().cloned(),
            Some(other) => {
                errors.push(Error::custom(format!("a DTO starts with its struct name\n  {DTO_HELP}")).with_span(other));
                None
            }
            None => None,
        };
        let mut out = DtoAttr {
            name: name.unwrap_or_else(|| syn::Ident::new("__Missing", Span::call_site())),
            kind: Kind::Read,
            exclude: Vec::new(),
            only: Vec::new(),
            has_only: false,
            allow_unknown: false,
        };
        for item in items.iter().skip(1) {
            match item {
                NestedMeta::Meta(syn::Meta::Path(p)) if p.is_ident("create") || p.is_ident("update") => {
                    if out.kind != Kind::Read {
                        errors.push(Error::custom("a DTO is either `create` or `update`, not both").with_span(p));
                    }
                    out.kind = if p.is_ident("create") { Kind::Create } else { Kind::Update };
                }
                NestedMeta::Meta(syn::Meta::Path(p)) if p.is_ident("allow_unknown_fields") => out.allow_unknown = true,
                NestedMeta::Meta(syn::Meta::List(list))
                    if list.path.is_ident("exclude") || list.path.is_ident("only") =>
                {
                    let names = errors.handle(ident_list(list)).unwrap_or_default();
                    if list.path.is_ident("only") {
                        out.has_only = true;
                        if names.is_empty() {
                            errors.push(Error::custom("`only(..)` needs at least one field").with_span(list));
                        }
                        out.only.extend(names);
                    } else {
                        out.exclude.extend(names);
                    }
                }
                other => errors.push(
                    Error::custom(format!(
                        "expected `create`, `update`, `exclude(..)`, `only(..)` or `allow_unknown_fields`\n  {DTO_HELP}"
                    ))
                    .with_span(other),
                ),
            }
        }
        if items.is_empty() {
            errors.push(Error::custom(format!("a DTO needs a struct name\n  {DTO_HELP}")));
        }
        if out.has_only && !out.exclude.is_empty() {
            errors.push(Error::custom("use either `only(..)` or `exclude(..)`, not both").with_span(&out.name));
        }
        errors.finish_with(out)
    }
}

fn ident_list(list: &syn::MetaList) -> darling::Result<Vec<syn::Ident>> {
    let items = NestedMeta::parse_meta_list(list.tokens.clone())?;
    let mut errors = Error::accumulator();
    let mut out = Vec::new();
    for item in &items {
        match item {
            NestedMeta::Meta(syn::Meta::Path(p)) if p.get_ident().is_some() => out.extend(p.get_ident().cloned()),
            other => errors.push(Error::custom("expected a field name").with_span(other)),
        }
    }
    errors.finish_with(out)
}

/// A validated DTO: the positions of its fields.
pub struct Dto {
    /// The struct's name.
    pub name: syn::Ident,
    /// Its kind.
    pub kind: Kind,
    /// Positions of the model fields it carries, in model order.
    pub fields: Vec<usize>,
    /// Whether deserializing ignores unknown keys (`allow_unknown_fields`) instead of failing.
    pub allow_unknown: bool,
}

/// Resolves a DTO's field lists against the model; unknown names are errors with suggestions.
pub fn resolve(attr: &DtoAttr, model: &Model, errors: &mut darling::error::Accumulator) -> Dto {
    if attr.kind == Kind::Update && model.primary_key.is_empty() {
        errors.push(
            Error::custom(format!(
                "update DTO `{}` needs the model's primary key to find the row it updates\n  \
                 help: mark the key field with #[model(primary_key)]",
                attr.name
            ))
            .with_span(&attr.name),
        );
    }
    let mut lookup = |ident: &syn::Ident| {
        let found = model.position(ident);
        if found.is_none() {
            let names: Vec<String> = model.fields.iter().map(|f| f.ident.to_string()).collect();
            let hint = match crate::naming::did_you_mean(&ident.to_string(), names.iter().map(String::as_str)) {
                Some(s) => format!("\n  help: did you mean `{s}`?"),
                None => format!("\n  help: the model's fields are: {}", names.join(", ")),
            };
            errors.push(
                Error::custom(format!("DTO `{}` names `{ident}`, which is not a field of this model{hint}", attr.name))
                    .with_span(ident),
            );
        }
        found
    };
    let excluded: Vec<usize> = attr.exclude.iter().filter_map(&mut lookup).collect();
    let only: Vec<usize> = attr.only.iter().filter_map(&mut lookup).collect();
    let mut fields: Vec<usize> = (0..model.fields.len())
        .filter(|i| !excluded.contains(i) && (!attr.has_only || only.contains(i)))
        .filter(|&i| {
            let f = &model.fields[i];
            match attr.kind {
                Kind::Read => true,
                // A new row's version is set by the insert.
                Kind::Create => !f.generated && f.auto == Auto::None && model.version != Some(i),
                Kind::Update => !model.primary_key.contains(&i) && !f.generated && f.auto == Auto::None,
            }
        })
        .collect();
    if attr.kind == Kind::Create {
        // A field left out of a create DTO is stored as its type's default: only allowed where
        // that is meaningful (an Option becomes NULL).
        for ident in &attr.exclude {
            if let Some(i) = model.position(ident) {
                let f = &model.fields[i];
                if !is_option(&f.ty) && !f.generated && f.auto == Auto::None && model.version != Some(i) {
                    errors.push(
                        Error::custom(format!(
                            "create DTO `{}` cannot leave out `{ident}`: it is not an Option, so a new row needs it",
                            attr.name
                        ))
                        .with_span(ident),
                    );
                }
            }
        }
        if attr.has_only {
            for (i, f) in model.fields.iter().enumerate() {
                if !only.contains(&i)
                    && !is_option(&f.ty)
                    && !f.generated
                    && f.auto == Auto::None
                    && model.version != Some(i)
                {
                    errors.push(
                        Error::custom(format!(
                            "create DTO `{}` must include `{}`: it is not an Option, so a new row needs it",
                            attr.name, f.ident
                        ))
                        .with_span(&attr.name),
                    );
                }
            }
        }
    }
    if attr.kind == Kind::Update
        && let Some(v) = model.version
        && !fields.contains(&v)
    {
        errors.push(
            Error::custom(format!(
                "update DTO `{}` must carry the version field `{}`: a patch of a versioned model is written only \
                 while the stored version is the one the client read\n  \
                 help: do not exclude `{}` (in the DTO it is required, not an Option)",
                attr.name, model.fields[v].ident, model.fields[v].ident
            ))
            .with_span(&attr.name),
        );
    }
    fields.dedup();
    Dto { name: attr.name.clone(), kind: attr.kind, fields, allow_unknown: attr.allow_unknown }
}

/// A field attribute as an update DTO forwards it: serde's `default` and `skip_serializing_if`
/// left out, the rest (`rename`, `alias`, other attributes) kept; `None` when nothing of a
/// serde attribute is left. An attribute that does not parse as a list is forwarded as it is
/// (serde reports it).
fn for_update(attr: &syn::Attribute) -> Option<syn::Attribute> {
    use syn::punctuated::Punctuated;
    if !attr.path().is_ident("serde") {
        return Some(attr.clone());
    }
    let Ok(items) = attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated) else {
        return Some(attr.clone());
    };
    let kept: Vec<&syn::Meta> =
        items.iter().filter(|m| !m.path().is_ident("default") && !m.path().is_ident("skip_serializing_if")).collect();
    if kept.is_empty() {
        return None;
    }
    Some(syn::parse_quote!(#[serde(#(#kept),*)]))
}

/// Whether a type is written as `Option<..>` (aliases of Option are not recognised).
pub fn is_option(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        _ => false,
    }
}

/// The generated struct and its impls.
pub fn expand(dto: &Dto, model: &Model, validates: bool, vis: &syn::Visibility) -> TokenStream {
    let (name, model_ident, krate) = (&dto.name, &model.ident, &model.krate);
    let serde = quote!(#krate::__private::serde);
    let krate_text = quote!(#krate).to_string().replace(' ', "");
    let serde_crate = format!("{krate_text}::__private::serde");
    let double_option = format!("{krate_text}::__private::double_option");
    let validate_derive = validates.then(|| quote!(, ::validator::Validate));
    let fields = dto.fields.iter().map(|&i| {
        let f = &model.fields[i];
        let (ident, ty, fvis) = (&f.ident, &f.ty, &f.vis);
        let attrs = &f.forwarded;
        // An update DTO sets its own `default` and `skip_serializing_if` on the `Option` it
        // wraps the field in: the field's own would be duplicates (refused by serde) and
        // describe the field, not the patch.
        let update_attrs: Vec<syn::Attribute> = attrs.iter().filter_map(for_update).collect();
        match dto.kind {
            // The version a patch expects: required, so a client cannot skip the check.
            Kind::Update if model.version == Some(i) => quote!(#(#attrs)* #fvis #ident: #ty),
            Kind::Update if is_option(ty) => quote! {
                #(#update_attrs)*
                #[serde(default, skip_serializing_if = "Option::is_none", with = #double_option)]
                #fvis #ident: ::core::option::Option<#ty>
            },
            Kind::Update => quote! {
                #(#update_attrs)*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #fvis #ident: ::core::option::Option<#ty>
            },
            _ => quote!(#(#attrs)* #fvis #ident: #ty),
        }
    });
    let doc = match dto.kind {
        Kind::Read => format!("A read view of [`{model_ident}`] (generated by `#[model(dto(..))]`)."),
        Kind::Create => {
            format!("The input for creating a [`{model_ident}`] (generated by `#[model(dto(.., create))]`).")
        }
        Kind::Update => {
            format!("A partial update of a [`{model_ident}`]: only the fields that are `Some` are written.")
        }
    };
    let derive_default = (dto.kind == Kind::Update).then(|| quote!(::core::default::Default,));
    // A misspelled key would otherwise vanish: `{"nmae": "x"}` parsed into an empty patch, and
    // `id` in a create body was dropped without a word.
    let deny_unknown = (!dto.allow_unknown).then(|| quote!(#[serde(deny_unknown_fields)]));
    let def = quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, #derive_default #serde::Serialize, #serde::Deserialize #validate_derive)]
        #[serde(crate = #serde_crate)]
        #deny_unknown
        #vis struct #name { #(#fields,)* }
    };
    let impls = match dto.kind {
        Kind::Read => read_impls(dto, model),
        Kind::Create => create_impls(dto, model),
        Kind::Update => update_impls(dto, model, validates),
    };
    quote!(#def #impls)
}

fn read_impls(dto: &Dto, model: &Model) -> TokenStream {
    let (name, model_ident, krate) = (&dto.name, &model.ident, &model.krate);
    let moves = dto.fields.iter().map(|&i| {
        let ident = &model.fields[i].ident;
        quote!(#ident: __m.#ident)
    });
    let positions = &dto.fields;
    let reads = dto.fields.iter().map(|&i| {
        let f = &model.fields[i];
        let (ident, ty) = (&f.ident, &f.ty);
        let fname = ident.to_string();
        quote!(#ident: __cols.next::<#ty>(<#ty as #krate::FieldType>::COLUMN, #fname)?)
    });
    quote! {
        #[automatically_derived]
        impl ::core::convert::From<#model_ident> for #name {
            fn from(__m: #model_ident) -> Self {
                #name { #(#moves,)* }
            }
        }

        #[automatically_derived]
        impl #krate::__private::Projection<#model_ident> for #name {
            const FIELDS: &'static [usize] = &[#(#positions),*];
            fn decode(__cols: &mut #krate::__private::Columns<'_>) -> #krate::Result<Self> {
                ::core::result::Result::Ok(#name { #(#reads,)* })
            }
        }
    }
}

fn create_impls(dto: &Dto, model: &Model) -> TokenStream {
    let (name, model_ident, krate) = (&dto.name, &model.ident, &model.krate);
    let inits = model.fields.iter().enumerate().map(|(i, f)| {
        let ident = &f.ident;
        if dto.fields.contains(&i) {
            quote!(#ident: self.#ident)
        } else {
            quote!(#ident: ::core::default::Default::default())
        }
    });
    let unloaded = model.relations.iter().map(|r| {
        let ident = &r.ident;
        quote!(#ident: #krate::Rel::NotLoaded)
    });
    quote! {
        #[automatically_derived]
        impl #name {
            /// The model this input creates; database-generated keys and automatic timestamps
            /// hold placeholders until it is inserted.
            pub fn into_model(self) -> #model_ident {
                #model_ident { #(#inits,)* #(#unloaded,)* }
            }

            /// Validates and inserts the new row, returning it as stored.
            pub async fn insert<__E: #krate::Executor>(self, db: __E) -> #krate::Result<#model_ident> {
                #krate::ModelExt::insert(&self.into_model(), db).await
            }
        }
    }
}

fn update_impls(dto: &Dto, model: &Model, validates: bool) -> TokenStream {
    let (name, model_ident, krate) = (&dto.name, &model.ident, &model.krate);
    let model_name = model_ident.to_string();
    let applies = dto.fields.iter().map(|&i| {
        let ident = &model.fields[i].ident;
        if model.version == Some(i) {
            return quote!(__m.#ident = self.#ident;);
        }
        quote!(if let ::core::option::Option::Some(__v) = &self.#ident { __m.#ident = ::core::clone::Clone::clone(__v); })
    });
    let sets = dto.fields.iter().map(|&i| {
        let f = &model.fields[i];
        let (ident, ty) = (&f.ident, &f.ty);
        if model.version == Some(i) {
            // The expected version: the runtime checks it and stores the next one.
            return quote! {
                __sets.push((#i, #krate::__private::field_value::<#ty>(&self.#ident, <#model_ident as #krate::Model>::SCHEMA, #i)?));
            };
        }
        quote! {
            if let ::core::option::Option::Some(__v) = &self.#ident {
                __sets.push((#i, #krate::__private::field_value::<#ty>(__v, <#model_ident as #krate::Model>::SCHEMA, #i)?));
            }
        }
    });
    let empties = dto.fields.iter().filter(|&&i| model.version != Some(i)).map(|&i| {
        let ident = &model.fields[i].ident;
        quote!(self.#ident.is_none())
    });
    let validate = validates.then(|| quote!(#krate::__private::run_validator(self, &mut __report);));
    quote! {
        #[automatically_derived]
        impl #name {
            /// Whether no field is set.
            pub fn is_empty(&self) -> bool {
                true #(&& #empties)*
            }

            /// Writes the set fields into `model` (in memory).
            pub fn apply(&self, __m: &mut #model_ident) {
                #(#applies)*
            }

            /// Checks the field rules of the fields that are set.
            pub fn check_rules(&self) -> #krate::Result<()> {
                let mut __report = #krate::__private::ValidationReport::new(#model_name);
                #validate
                __report.into_result()
            }

            /// Validates the set fields, then writes only them (plus `updated_at`) to the row
            /// with primary key `key`, and returns the row as stored; [`polystore::Error::NotFound`]
            /// when there is no such row.
            pub async fn update<__E: #krate::Executor>(
                &self,
                db: __E,
                key: <#model_ident as #krate::Model>::Key,
            ) -> #krate::Result<#model_ident> {
                self.check_rules()?;
                let mut __sets = ::std::vec::Vec::new();
                #(#sets)*
                #krate::__private::update_fields::<#model_ident, __E>(db, key, __sets).await
            }
        }
    }
}
