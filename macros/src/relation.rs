//! Relation fields: `#[model(belongs_to)] pub author: Rel<User>`, `has_one`, `has_many`,
//! `many_to_many(through = PostTag)`. Parsed here, checked against the model's fields, and
//! expanded into `RelationSchema` entries, typed handles (`Post::AUTHOR`) and span-pinned
//! checks of what only the compiler can see (the target is a model; key types match).

use darling::ast::NestedMeta;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ir::Model;
use crate::naming;

const HELP: &str = "help: the correct format looks like #[model(belongs_to)] pub author: Rel<User>, \
                    #[model(belongs_to(key = author_id, on_delete = \"cascade\"))], \
                    #[model(has_many(foreign_key = author_id))] pub posts: Rel<Vec<Post>>, \
                    #[model(has_one)] pub profile: Rel<Option<Profile>> or \
                    #[model(many_to_many(through = PostTag, left = post_id, right = tag_id))] pub tags: Rel<Vec<Tag>>";

/// The options of one relation attribute, as written.
#[derive(Default)]
pub struct RelAttr {
    /// `key = field` / `foreign_key = field`.
    pub key: Option<syn::Ident>,
    /// `through = JoinModel`.
    pub through: Option<syn::Path>,
    /// `left = field` (join model field holding this model's key).
    pub left: Option<syn::Ident>,
    /// `right = field` (join model field holding the target's key).
    pub right: Option<syn::Ident>,
    /// `on_delete = "cascade"`.
    pub on_delete: Option<(String, Span)>,
    /// `on_update = "cascade"`.
    pub on_update: Option<(String, Span)>,
}

impl FromMeta for RelAttr {
    fn from_word() -> darling::Result<Self> {
        Ok(RelAttr::default())
    }

    fn from_list(items: &[NestedMeta]) -> darling::Result<Self> {
        let mut errors = Error::accumulator();
        let mut out = RelAttr::default();
        for item in items {
            let NestedMeta::Meta(syn::Meta::NameValue(nv)) = item else {
                errors.push(Error::custom(format!("expected `name = value`\n  {HELP}")).with_span(item));
                continue;
            };
            let name = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            let ident = || expr_ident(&nv.value);
            match name.as_str() {
                "key" | "foreign_key" => out.key = errors.handle(ident()),
                "left" => out.left = errors.handle(ident()),
                "right" => out.right = errors.handle(ident()),
                "through" => match &nv.value {
                    syn::Expr::Path(p) => out.through = Some(p.path.clone()),
                    other => errors.push(Error::custom("`through` names the join model").with_span(other)),
                },
                "on_delete" | "on_update" => {
                    let value = match &nv.value {
                        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some((s.value(), s.span())),
                        other => {
                            errors.push(Error::custom("expected a string such as \"cascade\"").with_span(other));
                            None
                        }
                    };
                    if name == "on_delete" {
                        out.on_delete = value;
                    } else {
                        out.on_update = value;
                    }
                }
                _ => errors.push(
                    Error::custom(format!(
                        "unknown relation option `{name}`; expected key, foreign_key, through, left, right, on_delete or on_update"
                    ))
                    .with_span(&nv.path),
                ),
            }
        }
        errors.finish_with(out)
    }
}

/// A field name given as `key = author_id` (or `key = "author_id"`).
fn expr_ident(expr: &syn::Expr) -> darling::Result<syn::Ident> {
    match expr {
        syn::Expr::Path(p) if p.path.get_ident().is_some() => {
            p.path.get_ident().cloned().ok_or_else(|| Error::custom("expected a field name").with_span(expr))
        }
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => {
            s.parse().map_err(|e| Error::from(e).with_span(s))
        }
        other => Err(Error::custom("expected a field name").with_span(other)),
    }
}

/// Relation kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `belongs_to`.
    BelongsTo,
    /// `has_one`.
    HasOne,
    /// `has_many`.
    HasMany,
    /// `many_to_many`.
    ManyToMany,
}

/// How many rows the field holds, from its type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// `Rel<T>`.
    One,
    /// `Rel<Option<T>>`.
    MaybeOne,
    /// `Rel<Vec<T>>`.
    Many,
}

/// A validated relation field.
pub struct Relation {
    /// The field.
    pub ident: syn::Ident,
    /// The field's visibility (its handle gets the same).
    pub vis: syn::Visibility,
    /// The handle constant's name.
    pub handle: syn::Ident,
    /// Which kind.
    pub kind: Kind,
    /// From the field's type.
    pub card: Card,
    /// The related model.
    pub target: syn::Type,
    /// This model's linking field: the foreign key (`belongs_to`) or the primary key.
    pub local: usize,
    /// The target's foreign-key field (`has_one`, `has_many`).
    pub remote: Option<syn::Ident>,
    /// `many_to_many`: join model, left and right fields.
    pub through: Option<(syn::Path, syn::Ident, syn::Ident)>,
    /// Referential actions (`belongs_to`).
    pub on_delete: TokenStream,
    /// Referential actions (`belongs_to`).
    pub on_update: TokenStream,
}

/// `Rel<X>` → (cardinality, target type).
fn split_type(ty: &syn::Type) -> Option<(Card, syn::Type)> {
    let inner = generic_arg(ty, "Rel")?;
    if let Some(t) = generic_arg(&inner, "Option") {
        Some((Card::MaybeOne, t))
    } else if let Some(t) = generic_arg(&inner, "Vec") {
        Some((Card::Many, t))
    } else {
        Some((Card::One, inner))
    }
}

fn generic_arg(ty: &syn::Type, name: &str) -> Option<syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    match args.args.first()? {
        syn::GenericArgument::Type(t) if args.args.len() == 1 => Some(t.clone()),
        _ => None,
    }
}

fn action(value: &Option<(String, Span)>, errors: &mut darling::error::Accumulator) -> TokenStream {
    let Some((text, span)) = value else { return quote!(__ps::RefAction::NoAction) };
    let variant = match text.as_str() {
        "cascade" => quote!(Cascade),
        "restrict" => quote!(Restrict),
        "set_null" => quote!(SetNull),
        "set_default" => quote!(SetDefault),
        "no_action" => quote!(NoAction),
        other => {
            errors.push(
                Error::from(syn::Error::new(
                    *span,
                    format!("unknown action {other:?}; use \"cascade\", \"restrict\", \"set_null\", \"set_default\" or \"no_action\""),
                )),
            );
            quote!(NoAction)
        }
    };
    quote!(__ps::RefAction::#variant)
}

/// Builds one relation from its field and attribute; `errors` gets every problem.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    field: &syn::Field,
    kind: Kind,
    attr: &RelAttr,
    keyword: Span,
    model: &Model,
    model_ident: &syn::Ident,
    errors: &mut darling::error::Accumulator,
) -> Option<Relation> {
    let ident = field.ident.clone()?;
    let Some((card, target)) = split_type(&field.ty) else {
        errors.push(Error::custom(format!("a relation field's type is `Rel<..>`\n  {HELP}")).with_span(&field.ty));
        return None;
    };
    let wanted = match kind {
        Kind::BelongsTo => None,
        Kind::HasOne => Some((Card::MaybeOne, "Rel<Option<Target>>")),
        Kind::HasMany | Kind::ManyToMany => Some((Card::Many, "Rel<Vec<Target>>")),
    };
    if let Some((_, form)) = wanted.filter(|(c, _)| *c != card) {
        errors.push(Error::custom(format!("this relation holds its rows as `{form}`")).with_span(&field.ty));
    }
    let snake_self = naming::snake_case(&model_ident.to_string());
    let (local, remote, through) = match kind {
        Kind::BelongsTo => {
            let key = attr.key.clone().unwrap_or_else(|| format_ident!("{}_id", ident));
            let Some(pos) = model.position(&key) else {
                let names: Vec<String> = model.fields.iter().map(|f| f.ident.to_string()).collect();
                let hint = naming::did_you_mean(&key.to_string(), names.iter().map(String::as_str))
                    .map(|s| format!("\n  help: did you mean `{s}`? or name it with belongs_to(key = ..)"))
                    .unwrap_or_else(|| {
                        "\n  help: add the foreign-key field, or name it with belongs_to(key = ..)".into()
                    });
                let span = attr.key.as_ref().map(|k| k.span()).unwrap_or(keyword);
                errors.push(Error::from(syn::Error::new(
                    span,
                    format!("no foreign-key field `{key}` in this model{hint}"),
                )));
                return None;
            };
            let nullable = crate::dto::is_option(&model.fields[pos].ty);
            if nullable != (card == Card::MaybeOne) {
                let form = if nullable { "Rel<Option<Target>>" } else { "Rel<Target>" };
                errors.push(
                    Error::custom(format!(
                        "the foreign key `{key}` is {}, so this field is `{form}`",
                        if nullable { "nullable" } else { "not nullable" }
                    ))
                    .with_span(&field.ty),
                );
            }
            (pos, None, None)
        }
        Kind::HasOne | Kind::HasMany => {
            let fk = attr.key.clone().unwrap_or_else(|| format_ident!("{}_id", snake_self));
            (single_key(model, keyword, errors)?, Some(fk), None)
        }
        Kind::ManyToMany => {
            let Some(through) = attr.through.clone() else {
                errors.push(Error::from(syn::Error::new(
                    keyword,
                    format!("many_to_many needs `through = JoinModel`\n  {HELP}"),
                )));
                return None;
            };
            let target_name = match &target {
                syn::Type::Path(p) => p.path.segments.last().map(|s| naming::snake_case(&s.ident.to_string())),
                _ => None,
            }
            .unwrap_or_default();
            let left = attr.left.clone().unwrap_or_else(|| format_ident!("{}_id", snake_self));
            let right = attr.right.clone().unwrap_or_else(|| format_ident!("{}_id", target_name));
            (single_key(model, keyword, errors)?, None, Some((through, left, right)))
        }
    };
    if kind != Kind::BelongsTo && (attr.on_delete.is_some() || attr.on_update.is_some()) {
        errors.push(Error::from(syn::Error::new(
            keyword,
            "on_delete / on_update belong on the side holding the foreign key: declare them on its belongs_to",
        )));
    }
    Some(Relation {
        handle: syn::Ident::new(&naming::handle_name(&ident.to_string()), ident.span()),
        ident,
        vis: field.vis.clone(),
        kind,
        card,
        target,
        local,
        remote,
        through,
        on_delete: action(&attr.on_delete, errors),
        on_update: action(&attr.on_update, errors),
    })
}

/// The model's single key field (relations link through one column).
fn single_key(model: &Model, keyword: Span, errors: &mut darling::error::Accumulator) -> Option<usize> {
    match model.primary_key.as_slice() {
        [one] => Some(*one),
        _ => {
            errors
                .push(Error::from(syn::Error::new(keyword, "relations need a single-field primary key on this model")));
            None
        }
    }
}

/// The `RelationSchema` literal.
pub fn schema_tokens(rel: &Relation) -> TokenStream {
    let name = rel.ident.to_string();
    let target = &rel.target;
    let kind = match rel.kind {
        Kind::BelongsTo => quote!(BelongsTo),
        Kind::HasOne => quote!(HasOne),
        Kind::HasMany => quote!(HasMany),
        Kind::ManyToMany => quote!(ManyToMany),
    };
    let local = rel.local;
    let remote = match &rel.remote {
        Some(r) => {
            let r = r.to_string();
            quote!(::core::option::Option::Some(#r))
        }
        None => quote!(::core::option::Option::None),
    };
    let through = match &rel.through {
        Some((path, left, right)) => {
            let (left, right) = (left.to_string(), right.to_string());
            quote!(::core::option::Option::Some(__ps::ThroughSchema {
                schema: || <#path as __ps::Model>::SCHEMA,
                left: #left,
                right: #right,
            }))
        }
        None => quote!(::core::option::Option::None),
    };
    let (on_delete, on_update) = (&rel.on_delete, &rel.on_update);
    quote! {
        __ps::RelationSchema {
            name: #name,
            kind: __ps::RelationKind::#kind,
            target: || <#target as __ps::Model>::SCHEMA,
            local_field: #local,
            remote_field: #remote,
            through: #through,
            on_delete: #on_delete,
            on_update: #on_update,
        }
    }
}

/// Compile-time checks: the target is a model, and the key types on both sides agree.
pub fn checks(rel: &Relation, model: &Model) -> TokenStream {
    let (target, ident) = (&rel.target, &model.ident);
    let is_model = quote_spanned!(target.span()=> __ps::assert_model::<#target>(););
    let key_of = |t: &dyn quote::ToTokens| quote!(<#t as __ps::Model>::Key);
    let fk_check = match (&rel.kind, &rel.remote, &rel.through) {
        (Kind::BelongsTo, _, _) => {
            let fk = &model.fields[rel.local].ident;
            let key = key_of(target);
            quote_spanned!(fk.span()=> fn __fk(__m: &#ident) { __ps::assert_foreign_key::<#key, _>(&__m.#fk); })
        }
        (_, Some(fk), _) => {
            let key = key_of(ident);
            quote_spanned!(fk.span()=> fn __fk(__t: &#target) { __ps::assert_foreign_key::<#key, _>(&__t.#fk); })
        }
        (_, _, Some((join, left, right))) => {
            let (lk, rk) = (key_of(ident), key_of(target));
            let l = quote_spanned!(left.span()=> __ps::assert_foreign_key::<#lk, _>(&__j.#left););
            let r = quote_spanned!(right.span()=> __ps::assert_foreign_key::<#rk, _>(&__j.#right););
            quote!(fn __fk(__j: &#join) { #l #r })
        }
        _ => TokenStream::new(),
    };
    quote! {
        const _: () = { #is_model };
        #[allow(dead_code, non_snake_case)]
        const _: () = { #fk_check };
    }
}

/// The typed handle constant: `pub const AUTHOR: Relation<Post, User, One>`.
pub fn handle(rel: &Relation, index: usize, model: &Model) -> TokenStream {
    let (ident, krate, target, field, vis, handle) =
        (&model.ident, &model.krate, &rel.target, &rel.ident, &rel.vis, &rel.handle);
    let card = match rel.card {
        Card::One => quote!(One),
        Card::MaybeOne => quote!(MaybeOne),
        Card::Many => quote!(Many),
    };
    let key_field = |pos: usize| {
        let f = &model.fields[pos].ident;
        quote!(|__m: &#ident| #krate::__private::key_value(&__m.#f))
    };
    let target_key = quote!(|__t: &#target| <#target as #krate::Model>::primary_key_value(__t));
    let (parent_key, child_key) = match (&rel.kind, &rel.remote) {
        (Kind::BelongsTo, _) => (key_field(rel.local), target_key.clone()),
        (_, Some(fk)) => (key_field(rel.local), quote!(|__t: &#target| #krate::__private::key_value(&__t.#fk))),
        _ => (key_field(rel.local), target_key),
    };
    let links = match &rel.through {
        Some((join, left, right)) => {
            let (left, right) = (left.to_string(), right.to_string());
            quote!(::core::option::Option::Some(|__db, __keys| #krate::__private::load_links::<#join>(__db, #left, #right, __keys)))
        }
        None => quote!(::core::option::Option::None),
    };
    let doc = format!("Typed handle to relation `{field}`: load it with `.with({ident}::{handle})`.");
    quote! {
        #[doc = #doc]
        #vis const #handle: #krate::Relation<#ident, #target, #krate::__private::#card> =
            #krate::Relation::new(#index, |__m| &mut __m.#field, #parent_key, #child_key, #links);
    }
}
