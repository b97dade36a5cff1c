//! `#[derive(Enum)]`: a field-less enum stored as the text of its variants (with a CHECK on
//! SQL stores listing the allowed values). Parse → validate → expand, like the model derive.

use darling::{Error, FromDeriveInput, FromVariant, ast, util::SpannedValue};
use proc_macro2::TokenStream;
use quote::quote;

use crate::check::On as _;
use crate::naming;

#[derive(FromDeriveInput)]
#[darling(attributes(model), supports(enum_any))]
struct EnumInput {
    ident: syn::Ident,
    generics: syn::Generics,
    data: ast::Data<VariantInput, ()>,
    #[darling(default)]
    rename_all: Option<SpannedValue<String>>,
    #[darling(default, rename = "crate")]
    krate: Option<syn::Path>,
}

#[derive(FromVariant)]
#[darling(attributes(model))]
struct VariantInput {
    ident: syn::Ident,
    fields: ast::Fields<syn::Field>,
    #[darling(default)]
    rename: Option<SpannedValue<String>>,
}

/// The derive: `TextEnum` and `FieldType` impls.
pub fn derive_enum(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match parse(&input) {
        Ok(tokens) => tokens,
        Err(e) => e.write_errors(),
    }
}

fn parse(input: &syn::DeriveInput) -> darling::Result<TokenStream> {
    let parsed = EnumInput::from_derive_input(input)?;
    let mut errors = Error::accumulator();
    if let Some(param) = parsed.generics.params.first() {
        errors.push(Error::custom("a stored enum cannot be generic").with_span(param));
    }
    if let Some(rule) = parsed.rename_all.as_ref().filter(|r| naming::rename_variant("X", r).is_none()) {
        errors.push(
            Error::custom(format!(
                "unknown rename_all rule {:?}; use one of: {}",
                rule.as_str(),
                naming::RENAME_RULES.join(", ")
            ))
            .on(rule.span()),
        );
    }
    let variants = parsed.data.as_ref().take_enum().unwrap_or_default();
    if variants.is_empty() {
        errors.push(Error::custom("a stored enum needs at least one variant").with_span(&parsed.ident));
    }
    let mut names: Vec<String> = Vec::new();
    for v in &variants {
        if !v.fields.is_unit() {
            errors.push(
                Error::custom(format!(
                    "variant `{}` has fields, but a stored enum is stored as the text of its variant\n  \
                     help: keep the variants field-less, or store the data as a #[derive(Embedded)] type",
                    v.ident
                ))
                .with_span(&v.ident),
            );
        }
        let name = match (&v.rename, &parsed.rename_all) {
            (Some(r), _) => r.to_string(),
            (None, Some(rule)) => {
                naming::rename_variant(&v.ident.to_string(), rule).unwrap_or_else(|| v.ident.to_string())
            }
            (None, None) => v.ident.to_string(),
        };
        if names.contains(&name) {
            errors.push(Error::custom(format!("two variants are stored as {name:?}")).with_span(&v.ident));
        }
        names.push(name);
    }
    errors.finish()?;
    let ident = &parsed.ident;
    let krate = parsed.krate.clone().unwrap_or_else(|| syn::parse_quote!(::polystore));
    let idents: Vec<&syn::Ident> = variants.iter().map(|v| &v.ident).collect();
    let type_name = ident.to_string();
    Ok(quote! {
        const _: () = {
            use #krate::__private as __ps;

            #[automatically_derived]
            impl __ps::TextEnum for #ident {
                const VARIANTS: &'static [&'static str] = &[#(#names),*];
                fn as_str(&self) -> &'static str {
                    match self { #(Self::#idents => #names,)* }
                }
                fn from_str(__s: &str) -> ::core::option::Option<Self> {
                    match __s {
                        #(#names => ::core::option::Option::Some(Self::#idents),)*
                        _ => ::core::option::Option::None,
                    }
                }
            }

            #[automatically_derived]
            impl __ps::FieldType for #ident {
                const COLUMN: __ps::ColumnType =
                    __ps::ColumnType::scalar(__ps::Scalar::Enum(<Self as __ps::TextEnum>::VARIANTS));
                fn to_value(&self) -> __ps::Result<__ps::Value, __ps::ValueError> {
                    __ps::enum_to_value(self)
                }
                fn to_value_ref(&self) -> __ps::Result<__ps::ValueRef<'_>, __ps::ValueError> {
                    ::core::result::Result::Ok(__ps::ValueRef::Text(<Self as __ps::TextEnum>::as_str(self)))
                }
                fn from_value(__v: __ps::Value) -> __ps::Result<Self, __ps::ValueError> {
                    __ps::enum_from_value(__v, #type_name)
                }
            }
        };
    })
}
