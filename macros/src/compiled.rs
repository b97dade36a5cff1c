//! `#[compiled_here]`: polystore's own attribute for the non-generic async functions that
//! generic code awaits (the statement machinery, transactions, cache upkeep).
//!
//! An `async fn` called from code generic over a model has its body's state machine built in
//! every crate that instantiates that code: each application's model crate would compile the
//! statement machinery again. With debug assertions on (dev builds, where compile time
//! matters), the attribute turns the function into one returning a boxed future, so its body
//! is compiled once, in polystore; without them (release), into an `#[inline(always)]`
//! function returning the body's future itself, which costs no allocation. The body stays an
//! ordinary `async fn` (renamed `<name>_compiled_body`), in reach of rustfmt and the IDE, and
//! the signature is written once.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, Pat, ReturnType};

/// Expands `#[compiled_here]` on `item` (see the module documentation).
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "`compiled_here` takes no arguments"));
    }
    let f: ItemFn = syn::parse2(item)?;
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(f.sig.fn_token.span(), "`compiled_here` goes on an `async fn`"));
    }
    let mut lifetime = None;
    for param in &f.sig.generics.params {
        match param {
            GenericParam::Lifetime(l) if lifetime.is_none() => lifetime = Some(l.lifetime.clone()),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "`compiled_here` takes at most one lifetime parameter (the future's) and no type or const parameters",
                ));
            }
        }
    }
    if let Some(clause) = &f.sig.generics.where_clause {
        return Err(syn::Error::new(clause.span(), "`compiled_here` takes no where clause"));
    }
    let mut inputs = Vec::new();
    let mut names = Vec::new();
    for arg in &f.sig.inputs {
        let FnArg::Typed(typed) = arg else {
            return Err(syn::Error::new(arg.span(), "`compiled_here` goes on free functions, not methods"));
        };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new(
                typed.pat.span(),
                "`compiled_here` takes plain argument names (destructure in the body)",
            ));
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            return Err(syn::Error::new(pat.span(), "`compiled_here` takes plain argument names"));
        }
        let (name, ty) = (&pat.ident, &typed.ty);
        inputs.push(quote!(#name: #ty));
        names.push(name.clone());
    }
    let lifetime = match lifetime {
        Some(l) => quote!(#l),
        None => quote!('static),
    };
    let output = match &f.sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let (vis, name, generics, block) = (&f.vis, &f.sig.ident, &f.sig.generics, &f.block);
    let attrs = &f.attrs;
    // The body keeps the item's attributes (`cfg`, lint levels) but not its documentation.
    let body_attrs: Vec<_> = f.attrs.iter().filter(|a| !a.path().is_ident("doc")).collect();
    let body_name = format_ident!("{}_compiled_body", name);
    let mut body_sig = f.sig.clone();
    body_sig.ident = body_name.clone();
    Ok(quote! {
        #(#body_attrs)*
        // The lifetime parameter names the wrappers' future; the body could elide it.
        #[allow(clippy::needless_lifetimes)]
        #body_sig #block

        #(#attrs)*
        #[cfg(debug_assertions)]
        #vis fn #name #generics (#(#inputs),*) -> crate::model::BoxFuture<#lifetime, #output> {
            ::std::boxed::Box::pin(#body_name(#(#names),*))
        }

        #(#attrs)*
        #[cfg(not(debug_assertions))]
        #[inline(always)]
        #vis fn #name #generics (#(#inputs),*) -> impl ::core::future::Future<Output = #output> + Send + #lifetime {
            #body_name(#(#names),*)
        }
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::expand;

    fn error(item: proc_macro2::TokenStream) -> String {
        expand(proc_macro2::TokenStream::new(), item).expect_err("rejected").to_string()
    }

    /// One signature gives the body (same arguments, `mut` kept, documentation left to the
    /// wrappers) and the two wrappers (boxed with debug assertions, inlined without), which
    /// pass the arguments by name.
    #[test]
    fn one_signature_gives_the_body_and_both_wrappers() {
        let out = expand(
            proc_macro2::TokenStream::new(),
            quote! {
                /// Docs.
                #[allow(clippy::too_many_arguments)]
                pub(crate) async fn run<'a>(mut db: &'a mut dyn Executor, n: u32) -> Result<u64> { n }
            },
        )
        .expect("expands")
        .to_string();
        let body =
            "async fn run_compiled_body < 'a > (mut db : & 'a mut dyn Executor , n : u32) -> Result < u64 > { n }";
        assert!(out.contains(body), "{out}");
        assert!(out.contains("Box :: pin (run_compiled_body (db , n))"), "{out}");
        assert!(out.contains("crate :: model :: BoxFuture < 'a , Result < u64 > >"), "{out}");
        assert!(out.contains("# [inline (always)]"), "{out}");
        assert!(out.contains("Output = Result < u64 > > + Send + 'a"), "{out}");
        assert!(out.contains("pub (crate) fn run < 'a > (db : & 'a mut dyn Executor , n : u32)"), "{out}");
        assert_eq!(out.matches("Docs.").count(), 2, "documentation on the two wrappers only: {out}");
        assert_eq!(out.matches("too_many_arguments").count(), 3, "lint levels on all three: {out}");
        let unit = expand(proc_macro2::TokenStream::new(), quote! { async fn f() {} }).expect("expands").to_string();
        assert!(unit.contains("BoxFuture < 'static , () >"), "{unit}");
    }

    #[test]
    fn what_it_cannot_wrap_is_a_compile_error() {
        assert!(error(quote! { fn f() {} }).contains("`async fn`"));
        assert!(error(quote! { async fn f<T>(t: T) {} }).contains("no type or const parameters"));
        assert!(error(quote! { async fn f<'a, 'b>(x: &'a u8, y: &'b u8) {} }).contains("at most one lifetime"));
        assert!(error(quote! { async fn f((a, b): (u8, u8)) {} }).contains("plain argument names"));
        assert!(error(quote! { async fn f(&self) {} }).contains("not methods"));
        assert!(error(quote! { async fn f<'a>(x: &'a u8) where u8: Copy {} }).contains("where clause"));
        let args = expand(quote!(boxed), quote! { async fn f() {} }).expect_err("rejected").to_string();
        assert!(args.contains("no arguments"), "{args}");
    }
}
