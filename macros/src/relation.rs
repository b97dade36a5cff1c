//! Relation fields: `#[model(belongs_to)] pub author: Rel<User>`, `has_one`, `has_many`,
//! `many_to_many(through = PostTag)`. Parsed here, checked against the model's fields, and
//! expanded into `RelationSchema` entries, typed handles (`Post::AUTHOR`) and span-pinned
//! checks of what only the compiler can see (the target is a model; key types match).

use darling::ast::NestedMeta;
use darling::{Error, FromMeta};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

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
    /// Whether the remote key (`has_one` / `has_many`) or the join model's left field, and its
    /// right field, are default names rather than written (`foreign_key = ..`, `left = ..`).
    pub defaulted: (bool, bool),
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

/// Whether `ty` is written `Rel<..>` (a relation field).
pub fn is_rel(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Rel"))
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
    let defaulted = match kind {
        Kind::BelongsTo => (false, false),
        Kind::HasOne | Kind::HasMany => (attr.key.is_none(), false),
        Kind::ManyToMany => (attr.left.is_none(), attr.right.is_none()),
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
        defaulted,
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

/// Compile-time checks: the key types on both sides agree.
pub fn checks(rel: &Relation, model: &Model) -> TokenStream {
    let (target, ident) = (&rel.target, &model.ident);
    let key_of = |t: &dyn quote::ToTokens| quote!(<#t as __ps::Model>::Key);
    let fk_check = match (&rel.kind, &rel.remote, &rel.through) {
        (Kind::BelongsTo, _, _) => {
            let fk = &model.fields[rel.local].ident;
            let key = key_of(target);
            quote_spanned!(fk.span()=> fn __fk(__m: &#ident) { __ps::assert_foreign_key::<#key, _>(&__m.#fk); })
        }
        // A default foreign-key name is checked where the handle reads it (see `handle`).
        (_, Some(_), _) if rel.defaulted.0 => TokenStream::new(),
        (_, Some(fk), _) => {
            let key = key_of(ident);
            quote_spanned!(fk.span()=> fn __fk(__t: &#target) { __ps::assert_foreign_key::<#key, _>(&__t.#fk); })
        }
        (_, _, Some((join, left, right))) => {
            let help = format!(
                "help: name the join model's columns: #[model(many_to_many(through = {}, left = .., right = ..))]",
                quote!(#join).to_string().replace(' ', "")
            );
            let (lk, rk) = (key_of(ident), key_of(target));
            let l = if rel.defaulted.0 {
                let what = format!("the join column many_to_many `{}` uses by default for `{ident}`'s key", rel.ident);
                let check = KeyCheck { rel, ps: quote!(__ps), holder: join, name: left, key: lk, what, help: &help };
                check.assertion()
            } else {
                quote_spanned!(left.span()=> fn __l(__j: &#join) { __ps::assert_foreign_key::<#lk, _>(&__j.#left); })
            };
            let r = if rel.defaulted.1 {
                let what = format!(
                    "the join column many_to_many `{}` uses by default for `{}`'s key",
                    rel.ident,
                    type_text(target)
                );
                let check = KeyCheck { rel, ps: quote!(__ps), holder: join, name: right, key: rk, what, help: &help };
                check.assertion()
            } else {
                quote_spanned!(right.span()=> fn __r(__j: &#join) { __ps::assert_foreign_key::<#rk, _>(&__j.#right); })
            };
            quote!(const _: () = { #l }; const _: () = { #r };)
        }
        _ => TokenStream::new(),
    };
    // That the target is a model is checked by `<Target as Model>::SCHEMA` in the relation's
    // schema, on the target's span; a separate assertion would report the same error twice.
    quote! {
        #[allow(dead_code, non_snake_case)]
        const _: () = { #fk_check };
    }
}

/// Checks that `holder` has a field `name` able to hold a `key`, when `name` is a default the
/// user did not write: a missing field reads as one sentence on the relation field, naming the
/// default and the attribute that names the real field (instead of "no field `user_id` on type
/// `&Post`" inside generated code).
struct KeyCheck<'a> {
    rel: &'a Relation,
    /// The path of `polystore::__private` where the check is emitted.
    ps: TokenStream,
    holder: &'a dyn quote::ToTokens,
    name: &'a syn::Ident,
    key: TokenStream,
    what: String,
    help: &'a str,
}

impl KeyCheck<'_> {
    /// `trait __KeyField<K>`, implemented for models with a field `name` that holds a `K`, whose
    /// `__key` reads that field; and `__Holder`, the model checked, spanned on the relation field.
    fn items(&self) -> TokenStream {
        let (ps, holder, name) = (&self.ps, self.holder, self.name);
        let span = self.rel.ident.span();
        let name_ty = name_type(ps, &name.to_string());
        let message = format!("`{{Self}}` has no field `{name}` holding a key of type `{{K}}` ({})", self.what);
        let label = format!("`{name}` is a default name; this relation needs the field that really holds the key");
        let help = self.help;
        quote_spanned! {span=>
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #help)]
            trait __KeyField<K> {
                fn __key(&self) -> #ps::Value;
            }
            #[diagnostic::do_not_recommend]
            impl<__T: #ps::HasField<#name_ty>, K> __KeyField<K> for __T
            where
                <__T as #ps::HasField<#name_ty>>::Ty: #ps::ForeignKey<K> + #ps::FieldType,
            {
                fn __key(&self) -> #ps::Value {
                    #ps::key_value(#ps::HasField::<#name_ty>::field(self))
                }
            }
            type __Holder = #holder;
        }
    }

    /// The check alone (the key is not read by generated code: join models are read by name).
    fn assertion(&self) -> TokenStream {
        let (items, key) = (self.items(), &self.key);
        let span = self.rel.ident.span();
        quote_spanned! {span=>
            #items
            fn __has<__T: __KeyField<K>, K>() {}
            fn __check() { __has::<__Holder, #key>(); }
        }
    }
}

/// A field name as a type: `id` is `(Ch<'i'>, Ch<'d'>,)` (see `polystore::__private::HasField`).
pub fn name_type(ps: &TokenStream, name: &str) -> TokenStream {
    let chars = name.trim_start_matches("r#").chars();
    quote!((#(#ps::Ch<#chars>,)*))
}

/// A type as written, without spaces (`Vec<Tag>`).
fn type_text(ty: &dyn quote::ToTokens) -> String {
    quote!(#ty).to_string().replace(' ', "")
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
    let mut key_items = TokenStream::new();
    let (parent_key, child_key) = match (&rel.kind, &rel.remote) {
        (Kind::BelongsTo, _) => (key_field(rel.local), target_key.clone()),
        (_, Some(fk)) if rel.defaulted.0 => {
            let kind = if rel.kind == Kind::HasOne { "has_one" } else { "has_many" };
            let help = format!(
                "help: name the field of `{}` that holds a `{ident}` key: #[model({kind}(foreign_key = ...))]",
                type_text(target),
            );
            let check = KeyCheck {
                rel,
                ps: quote!(#krate::__private),
                holder: target,
                name: fk,
                key: quote!(<#ident as #krate::Model>::Key),
                what: format!("the foreign key {kind} `{field}` looks for by default"),
                help: &help,
            };
            key_items = check.items();
            let key = &check.key;
            let read = quote_spanned!(rel.ident.span()=> __child_key::<__Holder, #key>);
            key_items.extend(quote! {
                fn __child_key<__T: __KeyField<K>, K>(__t: &__T) -> #krate::__private::Value { __t.__key() }
            });
            (key_field(rel.local), read)
        }
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
        #vis const #handle: #krate::Relation<#ident, #target, #krate::__private::#card> = {
            #key_items
            #krate::Relation::new(#index, |__m| &mut __m.#field, #parent_key, #child_key, #links)
        };
    }
}
