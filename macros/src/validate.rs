//! Reads the `validator` crate's `#[validate(...)]` attributes, which the user's
//! `#[derive(Validate)]` owns: the model derive only looks at them, to call the rules before
//! writes and to turn rules with literal values into database checks. Anything it does not
//! understand is left to `validator` (which reports malformed rules itself).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

/// A rule the database can enforce too.
pub enum Check {
    /// Length bounds.
    Length { min: Option<u64>, max: Option<u64> },
    /// Numeric bounds.
    Range { min: Option<f64>, max: Option<f64>, exclusive_min: bool, exclusive_max: bool },
    /// An e-mail address.
    Email,
    /// A URL.
    Url,
    /// Contains a substring.
    Contains(String),
    /// Does not contain a substring.
    DoesNotContain(String),
    /// An `Option` that must be `Some`.
    Required,
}

/// The rules found on one field.
#[derive(Default)]
pub struct FieldRules {
    /// Rules the database can enforce.
    pub checks: Vec<Check>,
    /// Type assertions, each on the rule keyword's span.
    pub assertions: Vec<TokenStream>,
    /// Whether the field has any `#[validate]` attribute.
    pub any: bool,
}

/// Whether any `#[validate]` attribute sits on the container.
pub fn on_container(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("validate"))
}

/// Reads the `#[validate(...)]` attributes of one field of type `ty`.
pub fn field_rules(attrs: &[syn::Attribute], ty: &syn::Type) -> FieldRules {
    let mut rules = FieldRules::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("validate")) {
        rules.any = true;
        // Malformed rules are validator's to report; a parse failure here only means fewer
        // database checks.
        let _ = attr.parse_nested_meta(|meta| {
            let name = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            let span = meta.path.get_ident().map(|i| i.span()).unwrap_or_else(Span::call_site);
            let mut args = Args::default();
            if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| {
                    let key = inner.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
                    let value: syn::Expr = inner.value()?.parse()?;
                    args.values.push((key, value));
                    Ok(())
                })?;
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            match name.as_str() {
                "length" => {
                    rules.assertions.push(quote_spanned!(span=> __ps::assert_has_length::<#ty>();));
                    let equal = args.int("equal");
                    let (min, max) = (args.int("min").or(equal), args.int("max").or(equal));
                    if args.all_literal() && (min.is_some() || max.is_some()) {
                        rules.checks.push(Check::Length { min, max });
                    }
                }
                "range" => {
                    rules.assertions.push(quote_spanned!(span=> __ps::assert_numeric::<#ty>();));
                    let (emin, emax) = (args.float("exclusive_min"), args.float("exclusive_max"));
                    let (min, max) = (args.float("min").or(emin), args.float("max").or(emax));
                    if args.all_literal() && (min.is_some() || max.is_some()) {
                        let (exclusive_min, exclusive_max) = (emin.is_some(), emax.is_some());
                        rules.checks.push(Check::Range { min, max, exclusive_min, exclusive_max });
                    }
                }
                "email" | "url" => {
                    rules.assertions.push(quote_spanned!(span=> __ps::assert_text::<#ty>();));
                    rules.checks.push(if name == "email" { Check::Email } else { Check::Url });
                }
                "contains" | "does_not_contain" => {
                    rules.assertions.push(quote_spanned!(span=> __ps::assert_text::<#ty>();));
                    if let Some(pattern) = args.string("pattern") {
                        rules.checks.push(if name == "contains" {
                            Check::Contains(pattern)
                        } else {
                            Check::DoesNotContain(pattern)
                        });
                    }
                }
                "required" => rules.checks.push(Check::Required),
                _ => {}
            }
            Ok(())
        });
    }
    rules
}

/// The arguments of one rule, as written.
#[derive(Default)]
struct Args {
    values: Vec<(String, syn::Expr)>,
}

impl Args {
    fn get(&self, key: &str) -> Option<&syn::Expr> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether every bound is a literal (a bound given as a constant's path is known only to
    /// the compiler, so such a rule stays app-only).
    fn all_literal(&self) -> bool {
        self.values
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "min" | "max" | "equal" | "exclusive_min" | "exclusive_max"))
            .all(|(_, v)| number(v).is_some())
    }

    fn int(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(number).filter(|n| *n >= 0.0 && n.fract() == 0.0).map(|n| n as u64)
    }

    fn float(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(number)
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        }
    }
}

/// A numeric literal, possibly negative.
fn number(expr: &syn::Expr) -> Option<f64> {
    match expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<f64>().ok(),
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => number(&u.expr).map(|n| -n),
        _ => None,
    }
}

/// The schema literal of one check.
pub fn check_tokens(check: &Check) -> TokenStream {
    let opt_u = |v: &Option<u64>| match v {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let opt_f = |v: &Option<f64>| match v {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    match check {
        Check::Length { min, max } => {
            let (min, max) = (opt_u(min), opt_u(max));
            quote!(__ps::Check::Length { min: #min, max: #max })
        }
        Check::Range { min, max, exclusive_min, exclusive_max } => {
            let (min, max) = (opt_f(min), opt_f(max));
            quote!(__ps::Check::Range { min: #min, max: #max, exclusive_min: #exclusive_min, exclusive_max: #exclusive_max })
        }
        Check::Email => quote!(__ps::Check::Email),
        Check::Url => quote!(__ps::Check::Url),
        Check::Contains(p) => quote!(__ps::Check::Contains(#p)),
        Check::DoesNotContain(p) => quote!(__ps::Check::DoesNotContain(#p)),
        Check::Required => quote!(__ps::Check::Required),
    }
}
