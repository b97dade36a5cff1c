//! `#[derive(Row)]`: a struct that raw SQL rows decode into by column name
//! (`polystore::query::raw_rows::<Report>(sql)`). Each named field reads the column of the same
//! name (or `#[row(column = "name")]`) as the field's type; the runtime's errors name the
//! struct, the column and its SQL type.

use proc_macro2::TokenStream;
use quote::quote;

/// The derive: a `FromRawRow` impl reading each field by column name.
pub fn derive_row(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let ident = &input.ident;
    let fields = match &input.data {
        syn::Data::Struct(syn::DataStruct { fields: syn::Fields::Named(named), .. }) => &named.named,
        _ => {
            let e = syn::Error::new_spanned(
                ident,
                "#[derive(Row)] needs a struct with named fields (one per column); for rows by position use a tuple",
            );
            return e.to_compile_error();
        }
    };
    if let Some(param) = input.generics.params.first() {
        return syn::Error::new_spanned(param, "a row type cannot be generic").to_compile_error();
    }
    let mut errors: Option<syn::Error> = None;
    let mut reads = Vec::new();
    for field in fields {
        let name = field.ident.as_ref().expect("named field");
        match column_name(field) {
            Ok(column) => {
                let ty = &field.ty;
                reads.push(quote! { #name: __row.column::<#ty>(#column)? });
            }
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(e) = errors {
        return e.to_compile_error();
    }
    let type_name = ident.to_string();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::polystore::query::FromRawRow for #ident {
                const NAME: &'static str = #type_name;
                fn from_raw_row(__row: &::polystore::query::RawRow<'_>) -> ::polystore::Result<Self> {
                    ::core::result::Result::Ok(#ident { #(#reads,)* })
                }
            }
        };
    }
}

/// The column a field reads: `#[row(column = "name")]`, or the field's name (without `r#`).
fn column_name(field: &syn::Field) -> syn::Result<String> {
    let mut column = field.ident.as_ref().expect("named field").to_string().trim_start_matches("r#").to_owned();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("row")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("column") {
                column = meta.value()?.parse::<syn::LitStr>()?.value();
                Ok(())
            } else {
                Err(meta.error("unknown attribute; the correct format looks like #[row(column = \"name\")]"))
            }
        })?;
    }
    Ok(column)
}

#[cfg(test)]
mod tests {
    use super::derive_row;
    use quote::quote;

    #[test]
    fn reads_each_field_by_its_column_name() {
        let out = derive_row(quote! {
            struct Report { customer: String, #[row(column = "n")] invoices: i64 }
        })
        .to_string();
        assert!(out.contains("const NAME : & 'static str = \"Report\""), "{out}");
        assert!(out.contains("customer : __row . column :: < String > (\"customer\") ?"), "{out}");
        assert!(out.contains("invoices : __row . column :: < i64 > (\"n\") ?"), "{out}");
    }

    #[test]
    fn tuple_structs_and_unknown_keys_are_errors_that_name_the_fix() {
        let tuple = derive_row(quote! { struct ByPosition(String, i64); }).to_string();
        assert!(tuple.contains("compile_error") && tuple.contains("use a tuple"), "{tuple}");
        let unknown = derive_row(quote! { struct R { #[row(rename = "n")] count: i64 } }).to_string();
        assert!(unknown.contains("#[row(column = \\\"name\\\")]"), "{unknown}");
    }
}
