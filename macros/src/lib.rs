//! Derive macros for polystore. Placeholder while the derive is written.
use proc_macro::TokenStream;
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(_i: TokenStream) -> TokenStream { TokenStream::new() }
#[proc_macro_derive(Enum, attributes(model))]
pub fn derive_enum(_i: TokenStream) -> TokenStream { TokenStream::new() }
#[proc_macro_derive(Embedded, attributes(model))]
pub fn derive_embedded(_i: TokenStream) -> TokenStream { TokenStream::new() }
