//! Stage 3: code generation for `#[derive(Model)]`. The output is data (a `static`
//! `ModelSchema`) plus thin impls: `Model` (encode, decode, key) and one typed handle constant
//! per field. Type checks the macro cannot do itself are span-pinned assertions on the field's
//! type, so a wrong type reads as one sentence at the right place.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ir::{Auto, DefaultLit, Model, Redis};

/// The whole derive: parse, validate, expand; on error, the errors plus a stub.
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match Model::from_derive_input(&input) {
        Ok(model) => expand(&model),
        Err(errors) => {
            let mut out = errors.write_errors();
            out.extend(fallback(&input));
            out
        }
    }
}

fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let krate = &model.krate;
    let name = ident.to_string();
    let table = model.stored_table();
    let field_schemas = model.fields.iter().map(|f| {
        let fname = f.ident.to_string();
        let fname = fname.trim_start_matches("r#");
        let column = &f.column;
        let ty = &f.ty;
        let generated = f.generated;
        let auto = match f.auto {
            Auto::None => quote!(__ps::AutoTimestamp::None),
            Auto::CreatedAt => quote!(__ps::AutoTimestamp::CreatedAt),
            Auto::UpdatedAt => quote!(__ps::AutoTimestamp::UpdatedAt),
        };
        let default = match &f.default {
            None => quote!(::core::option::Option::None),
            Some(DefaultLit::Int(n)) => {
                quote!(::core::option::Option::Some(__ps::DefaultValue::Int(#n)))
            }
            Some(DefaultLit::Float(x)) => {
                quote!(::core::option::Option::Some(__ps::DefaultValue::Float(#x)))
            }
            Some(DefaultLit::Bool(b)) => {
                quote!(::core::option::Option::Some(__ps::DefaultValue::Bool(#b)))
            }
            Some(DefaultLit::Str(s)) => {
                quote!(::core::option::Option::Some(__ps::DefaultValue::Str(#s)))
            }
        };
        let column_ty = quote_spanned!(ty.span()=> <#ty as __ps::FieldType>::COLUMN);
        let checks = f.rules.checks.iter().map(crate::validate::check_tokens);
        let renamed_from = optional(f.renamed_from.as_ref().map(|r| quote!(#r)));
        let redis = match f.redis {
            Redis::None => quote!(__ps::RedisIndex::None),
            Redis::Set => quote!(__ps::RedisIndex::Set),
            Redis::SortedSet => quote!(__ps::RedisIndex::SortedSet),
        };
        quote! {
            __ps::FieldSchema {
                name: #fname,
                column: #column,
                ty: #column_ty,
                generated: #generated,
                auto: #auto,
                default: #default,
                redis: #redis,
                renamed_from: #renamed_from,
                checks: &[#(#checks),*],
            }
        }
    });
    let primary_key = &model.primary_key;
    let indexes = model.indexes.iter().map(|ix| {
        let (name, fields, unique) = (&ix.name, &ix.fields, ix.unique);
        let ttl = optional(ix.ttl_ms.map(|ms| quote!(__ps::Duration::from_millis(#ms))));
        quote!(__ps::IndexSchema { name: #name, fields: &[#(#fields),*], unique: #unique, ttl: #ttl })
    });

    let assertions = model.fields.iter().enumerate().map(|(i, f)| {
        let ty = &f.ty;
        // Whether the type can be stored at all is checked by `<T as FieldType>::COLUMN` in the
        // schema below, on the type's span; only the attribute-specific bounds are asserted here.
        let mut checks = Vec::new();
        if f.generated {
            checks.push(quote_spanned!(ty.span()=> __ps::assert_generated_key::<#ty>();));
        }
        let ttl_indexed = model.indexes.iter().any(|ix| ix.ttl_ms.is_some() && ix.fields.first() == Some(&i));
        if f.auto != Auto::None || ttl_indexed {
            checks.push(quote_spanned!(ty.span()=> __ps::assert_timestamp::<#ty>();));
        }
        if model.version == Some(i) {
            checks.push(quote_spanned!(ty.span()=> __ps::assert_version::<#ty>();));
        }
        if model.soft_delete == Some(i) {
            checks.push(quote_spanned!(ty.span()=> __ps::assert_soft_delete::<#ty>();));
        }
        if f.redis == Redis::SortedSet {
            checks.push(quote_spanned!(ty.span()=> __ps::assert_score::<#ty>();));
        }
        checks.extend(f.rules.assertions.iter().cloned());
        if let Some(lit) = f.default.as_ref().filter(|_| crate::check::known_type(ty).is_none()) {
            checks.push(default_assertion(lit, ty, f.default_span));
        }
        quote!(#(#checks)*)
    });

    let to_values = model.fields.iter().enumerate().map(|(i, f)| {
        let (field, ty) = (&f.ident, &f.ty);
        quote_spanned!(ty.span()=> __ps::encoded(<#ty as __ps::FieldType>::to_value(&self.#field), &__SCHEMA, #i)?)
    });
    let values_ref = model.fields.iter().enumerate().map(|(i, f)| {
        let (field, ty) = (&f.ident, &f.ty);
        quote_spanned!(ty.span()=> __ps::encoded(<#ty as __ps::FieldType>::to_value_ref(&self.#field), &__SCHEMA, #i)?)
    });
    let key_ty = key_type(model);
    let key_values = if let [only] = model.primary_key.as_slice() {
        quote!(__ps::field_value(__key, &__SCHEMA, #only)?)
    } else {
        let parts = model.primary_key.iter().enumerate().map(|(n, &pos)| {
            let n = syn::Index::from(n);
            quote!(__ps::field_value(&__key.#n, &__SCHEMA, #pos)?)
        });
        quote!(#(#parts),*)
    };
    let reads = model.fields.iter().enumerate().map(|(i, f)| {
        let (field, ty) = (&f.ident, &f.ty);
        let read = quote_spanned!(ty.span()=> <#ty as __ps::FieldType>::read_field(__reader, #i)?);
        quote!(#field: #read)
    });
    let unloaded = model.relations.iter().map(|r| {
        let field = &r.ident;
        quote!(#field: __ps::Rel::NotLoaded)
    });
    let relation_schemas = model.relations.iter().map(crate::relation::schema_tokens);
    let relation_checks = model.relations.iter().map(|r| crate::relation::checks(r, model));
    let distribution_schema = crate::distribution::schema_tokens(model);
    let distribution_checks = crate::distribution::relation_checks(model);
    let has_fields = model.fields.iter().map(|f| {
        let (name, ty, field) = (crate::relation::name_type(&quote!(__ps), &f.ident.to_string()), &f.ty, &f.ident);
        quote! {
            #[automatically_derived]
            impl __ps::HasField<#name> for #ident {
                type Ty = #ty;
                fn field(&self) -> &#ty { &self.#field }
            }
        }
    });
    let primary_key_value = match model.primary_key.as_slice() {
        [one] => {
            let f = &model.fields[*one].ident;
            quote!(__ps::key_value(&self.#f))
        }
        many => {
            let parts = many.iter().map(|&i| {
                let f = &model.fields[i].ident;
                quote!(__ps::key_value(&self.#f))
            });
            quote!(__ps::Value::Array(__ps::Vec::from([#(#parts),*])))
        }
    };
    let handles = handles(model);
    let check_rules = check_rules(model);
    let table_renamed_from = optional(model.stored_renamed_from().map(|r| quote!(#r)));
    let check_rules_async = check_rules_async(model);
    let hooks = hooks(model);
    let decoded = quote!(#ident { #(#reads,)* #(#unloaded,)* });
    let from_reader = match model.hooks {
        // The row is built, then the model's `after_load` hook runs on it.
        Some(span) => quote_spanned! {span=>
            let mut __row = #decoded;
            <Self as __ps::Hooks>::after_load(&mut __row)?;
            ::core::result::Result::Ok(__row)
        },
        None => quote!(::core::result::Result::Ok(#decoded)),
    };
    let version_field = model
        .version
        .map(|i| quote!(const VERSION_FIELD: ::core::option::Option<usize> = ::core::option::Option::Some(#i);));
    let soft_delete = optional(model.soft_delete.map(|i| quote!(#i)));
    let dtos = model.dtos.iter().map(|d| crate::dto::expand(d, model, model.validates, &model.vis));
    let cache = optional(model.cache.as_ref().map(|c| {
        let (ttl, jitter) = (c.ttl_ms, c.jitter_ms);
        let negative = optional(c.negative_ttl_ms.map(|ms| quote!(__ps::Duration::from_millis(#ms))));
        let max = optional(c.max_entry_bytes.map(|n| quote!(#n)));
        quote!(__ps::CachePolicy {
            ttl: __ps::Duration::from_millis(#ttl),
            jitter: __ps::Duration::from_millis(#jitter),
            negative_ttl: #negative,
            max_entry_bytes: #max,
        })
    }));

    let partition = crate::partition::schema_tokens(model.partition.as_ref());
    let partition_assertions = crate::partition::assertions(model.partition.as_ref(), model);

    quote! {
        #[allow(non_upper_case_globals, clippy::all)]
        const _: () = {
            use #krate::__private as __ps;

            const _: () = { #(#assertions)* };
            #partition_assertions

            static __SCHEMA: __ps::ModelSchema = __ps::ModelSchema {
                name: #name,
                table: #table,
                fields: &[#(#field_schemas),*],
                primary_key: &[#(#primary_key),*],
                indexes: &[#(#indexes),*],
                partition: #partition,
                cache: #cache,
                renamed_from: #table_renamed_from,
                relations: &[#(#relation_schemas),*],
                soft_delete: #soft_delete,
                #distribution_schema
            };

            #(#relation_checks)*
            #distribution_checks
            #(#has_fields)*

            __ps::inventory::submit! { __ps::Registration { schema: &__SCHEMA } }

            #[automatically_derived]
            impl __ps::Model for #ident {
                type Key = #key_ty;
                const SCHEMA: &'static __ps::ModelSchema = &__SCHEMA;

                fn to_values(&self) -> __ps::Result<__ps::Vec<__ps::Value>, __ps::Error> {
                    ::core::result::Result::Ok(__ps::Vec::from([#(#to_values),*]))
                }

                fn values_ref<'__a>(
                    &'__a self,
                    __out: &mut __ps::Vec<__ps::ValueRef<'__a>>,
                ) -> __ps::Result<(), __ps::Error> {
                    __out.extend([#(#values_ref),*]);
                    ::core::result::Result::Ok(())
                }

                fn key_values(__key: &Self::Key) -> __ps::Result<__ps::Vec<__ps::Value>, __ps::Error> {
                    ::core::result::Result::Ok(__ps::Vec::from([#key_values]))
                }

                fn from_reader<__R: __ps::RowReader>(__reader: &mut __R) -> __ps::Result<Self, __ps::Error> {
                    #from_reader
                }

                fn primary_key_value(&self) -> __ps::Value {
                    #primary_key_value
                }

                #version_field
                #check_rules
                #check_rules_async
                #hooks
            }
        };
        #handles
        #(#dtos)*
    }
}

/// `Model::check_rules`, when the model has `#[validate]` or business rules.
fn check_rules(model: &Model) -> TokenStream {
    if !model.validates && model.rules.is_empty() {
        return TokenStream::new();
    }
    let name = model.ident.to_string();
    let validator = model.validates.then(|| quote!(__ps::run_validator(self, &mut __report);));
    let rules = model.rules.iter().map(|path| quote!(__ps::run_rule(#path(self), &mut __report);));
    quote! {
        fn check_rules(&self) -> __ps::Result<(), __ps::Error> {
            let mut __report = __ps::ValidationReport::new(#name);
            #validator
            #(#rules)*
            __report.into_result()
        }
    }
}

/// `Model::HAS_ASYNC_RULES` and `Model::check_rules_async`, when async rules are declared.
fn check_rules_async(model: &Model) -> TokenStream {
    if model.async_rules.is_empty() {
        return TokenStream::new();
    }
    let name = model.ident.to_string();
    let rules =
        model.async_rules.iter().map(|path| quote!(__ps::run_rule(#path(self, &mut *__db).await, &mut __report);));
    quote! {
        const HAS_ASYNC_RULES: bool = true;

        fn check_rules_async<'__a>(
            &'__a self,
            __db: &'__a mut dyn __ps::Executor,
        ) -> __ps::BoxFuture<'__a, __ps::Result<(), __ps::Error>> {
            ::std::boxed::Box::pin(async move {
                let mut __report = __ps::ValidationReport::new(#name);
                #(#rules)*
                __report.into_result()
            })
        }
    }
}

/// `Model::HAS_HOOKS`, `copy_for_hooks` and `run_hook`, forwarding to the model's `Hooks` impl
/// when it says `#[model(hooks)]` (spanned on `hooks`, so a missing impl is reported there).
fn hooks(model: &Model) -> TokenStream {
    let Some(span) = model.hooks else {
        return TokenStream::new();
    };
    let arms = [
        ("BeforeInsert", "before_insert"),
        ("AfterInsert", "after_insert"),
        ("BeforeUpdate", "before_update"),
        ("AfterUpdate", "after_update"),
        ("BeforeDelete", "before_delete"),
        ("AfterDelete", "after_delete"),
    ]
    .map(|(variant, method)| {
        let variant = syn::Ident::new(variant, span);
        let method = syn::Ident::new(method, span);
        quote_spanned! {span=>
            __ps::Hook::#variant => ::std::boxed::Box::pin(<Self as __ps::Hooks>::#method(self, __cx)),
        }
    });
    quote_spanned! {span=>
        const HAS_HOOKS: bool = true;

        fn copy_for_hooks(&self) -> __ps::Result<Self, __ps::Error> {
            ::core::result::Result::Ok(<Self as ::core::clone::Clone>::clone(self))
        }

        fn run_hook<'__a>(
            &'__a mut self,
            __hook: __ps::Hook,
            __cx: &'__a mut __ps::HookCx<'_>,
        ) -> __ps::BoxFuture<'__a, __ps::Result<(), __ps::Error>> {
            match __hook {
                #(#arms)*
                _ => ::std::boxed::Box::pin(::core::future::ready(::core::result::Result::Ok(()))),
            }
        }
    }
}

/// A compile-time check that a default literal fits a type the macro does not know by name
/// (an enum, a decimal, a UUID…): the same rule the DDL writer applies, evaluated on the type's
/// stored column, failing on the literal's span.
fn default_assertion(lit: &DefaultLit, ty: &syn::Type, span: proc_macro2::Span) -> TokenStream {
    let (value, what) = match lit {
        DefaultLit::Int(n) => (quote!(__ps::DefaultValue::Int(#n)), "an integer"),
        DefaultLit::Float(x) => (quote!(__ps::DefaultValue::Float(#x)), "a float"),
        DefaultLit::Bool(b) => (quote!(__ps::DefaultValue::Bool(#b)), "a boolean"),
        DefaultLit::Str(s) => (quote!(__ps::DefaultValue::Str(#s)), "a string"),
    };
    let message = format!(
        "this default is {what}, which the field's type `{}` cannot hold (integers fit integer, float and decimal \
         fields; floats fit float and decimal fields; strings fit text, enum, UUID, date and JSON fields)",
        quote!(#ty).to_string().replace(' ', "")
    );
    quote_spanned!(span=> const _: () = if !#value.fits(<#ty as __ps::FieldType>::COLUMN) {
        ::core::panic!(#message)
    };)
}

/// `Some(tokens)` / `None` as an `Option` expression.
fn optional(tokens: Option<TokenStream>) -> TokenStream {
    match tokens {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    }
}

/// `type Key`: the key field's type, or a tuple of them.
fn key_type(model: &Model) -> TokenStream {
    let types: Vec<&syn::Type> = model.primary_key.iter().map(|&i| &model.fields[i].ty).collect();
    match types.as_slice() {
        [one] => quote!(#one),
        many => quote!((#(#many),*)),
    }
}

/// One typed handle constant per field: `pub const EMAIL: Field<User, String>`.
fn handles(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let krate = &model.krate;
    let consts = model.fields.iter().enumerate().map(|(i, f)| {
        let (vis, handle, ty) = (&f.vis, &f.handle, &f.ty);
        let doc = format!("Typed handle to field `{}` (stored as `{}`).", f.ident, f.column);
        quote! {
            #[doc = #doc]
            #vis const #handle: #krate::Field<#ident, #ty> = #krate::Field::new(#i);
        }
    });
    let relations = model.relations.iter().enumerate().map(|(i, r)| crate::relation::handle(r, i, model));
    quote! {
        #[automatically_derived]
        #[allow(dead_code)]
        impl #ident {
            #(#consts)*
            #(#relations)*
        }
    }
}

/// What is emitted next to the errors: the field handles and a `Model` impl that is never
/// run (the build fails anyway), so that code using the model reports nothing further.
fn fallback(input: &syn::DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let syn::Data::Struct(data) = &input.data else {
        return TokenStream::new();
    };
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate: syn::Path = syn::parse_quote!(::polystore);
    let consts = data.fields.iter().enumerate().filter_map(|(i, f)| {
        let name = f.ident.as_ref()?;
        let handle = format_ident!("{}", crate::naming::handle_name(&name.to_string()));
        let (vis, ty) = (&f.vis, &f.ty);
        Some(quote!(#vis const #handle: #krate::Field<#ident, #ty> = #krate::Field::new(#i);))
    });
    quote! {
        #[allow(dead_code)]
        impl #ident { #(#consts)* }
        const _: () = {
            use #krate::__private as __ps;
            impl __ps::Model for #ident {
                type Key = ();
                const SCHEMA: &'static __ps::ModelSchema = &__ps::ModelSchema::EMPTY;
                fn to_values(&self) -> __ps::Result<__ps::Vec<__ps::Value>, __ps::Error> {
                    ::core::panic!("polystore: this model did not compile")
                }
                fn key_values(_: &Self::Key) -> __ps::Result<__ps::Vec<__ps::Value>, __ps::Error> {
                    ::core::panic!("polystore: this model did not compile")
                }
                fn from_reader<__R: __ps::RowReader>(_: &mut __R) -> __ps::Result<Self, __ps::Error> {
                    ::core::panic!("polystore: this model did not compile")
                }
                fn primary_key_value(&self) -> __ps::Value {
                    ::core::panic!("polystore: this model did not compile")
                }
            }
        };
    }
}
