//! `#[derive(Embedded)]`: a serde type stored as one JSON value (PostgreSQL `JSONB`, SQLite JSON
//! text, a MongoDB embedded document). The type must also derive `Serialize` and `Deserialize`;
//! a missing one is reported by the trait bounds of the generated impl.

use proc_macro2::TokenStream;
use quote::quote;

/// The derive: a `FieldType` impl that goes through serde.
pub fn derive_embedded(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    if let Some(param) = input.generics.params.first() {
        return syn::Error::new_spanned(param, "an embedded type cannot be generic; wrap a concrete type instead")
            .to_compile_error();
    }
    let krate = match crate_path(&input.attrs) {
        Ok(path) => path,
        Err(e) => return e.to_compile_error(),
    };
    let ident = &input.ident;
    quote! {
        const _: () = {
            use #krate::__private as __ps;

            #[automatically_derived]
            impl __ps::FieldType for #ident {
                const COLUMN: __ps::ColumnType = __ps::ColumnType::scalar(__ps::Scalar::Json);
                fn to_value(&self) -> __ps::Result<__ps::Value, __ps::ValueError> {
                    __ps::embedded_to_value(self)
                }
                fn from_value(__v: __ps::Value) -> __ps::Result<Self, __ps::ValueError> {
                    __ps::embedded_from_value(__v)
                }
            }
        };
    }
}

/// `#[model(crate = "path")]`, the only attribute this derive takes.
fn crate_path(attrs: &[syn::Attribute]) -> syn::Result<syn::Path> {
    let mut path: syn::Path = syn::parse_quote!(::polystore);
    for attr in attrs.iter().filter(|a| a.path().is_ident("model")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                path = lit.parse()?;
                Ok(())
            } else {
                Err(meta.error("unknown attribute; #[derive(Embedded)] takes only #[model(crate = \"path\")]"))
            }
        })?;
    }
    Ok(path)
}
