//! The `#[cache_wrapper]` attribute macro of `dtrsfw`. Use it as
//! `dtrsfw::cache_wrapper` (or `dtrsfw::redis::caching::cache_wrapper`): the expansion
//! calls into `dtrsfw::redis::caching`, where all the caching logic lives; the macro only
//! gathers argument names and values and the options, and checks the options against the
//! function at compile time.

use proc_macro::TokenStream;
use proc_macro2::{Spacing, Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token, Type, bracketed};

/// The keys `cache_wrapper` accepts, for error messages.
const VALID_KEYS: &str = "redis, namespace, expire, cache_only_for, skip_cache_keys, local, local_capacity";

/// Caches a function's results in Redis, keyed by its arguments (the Python
/// `@cache_wrapper`).
///
/// ```text
/// #[cache_wrapper(
///     redis = REDIS,                      // any expression giving a RedisInstance or a reference to one
///     namespace = "cars",                 // key prefix
///     expire = 3600,                      // optional TTL in seconds
///     cache_only_for = [state in ["used", "new"], year >= 2020],  // optional; cached if any holds
///     skip_cache_keys = [request_id],     // optional; left out of the key
///     local = true,                       // optional; an in-process tier kept coherent by Redis
///     local_capacity = 50_000,            // optional; its most entries (implies `local = true`)
/// )]
/// ```
///
/// A condition is `argument operator value`, with `operator` one of `in`, `not in` (or
/// `not_in`), `==`, `!=`, `<`, `<=`, `>`, `>=` and `value` any serializable expression.
/// Works on sync and async functions and methods (`self` is never part of the key);
/// every other argument must be `Serialize` unless skipped. A function returning
/// `Result<T, E>` caches `Ok` values only. With `local`, the local tier keeps the decoded
/// value and a local hit returns a clone of it (`CachedFunction::call_cloned`), so the
/// value type (`T`) must be `Clone + Send + Sync + 'static`. Unknown keys, unknown operators and
/// conditions or skips naming an argument the function does not have are compile errors.
#[proc_macro_attribute]
pub fn cache_wrapper(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: TokenStream2 = item.into();
    match expand(attr.into(), &item2) {
        Ok(tokens) => tokens.into(),
        // Like tokio's macros, keep the original item so that one mistake in the
        // attribute does not bury the function under unrelated errors.
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#err #item2).into()
        }
    }
}

struct Condition {
    argument: Ident,
    /// The operator as written (`in`, `not in`, `<=`, ...); whether it is one is
    /// dtrsfw's to say: the expansion checks it at compile time.
    operator: String,
    operator_span: Span,
    value: Expr,
}

impl Parse for Condition {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let argument: Ident = input.parse()?;
        let (operator, operator_span) = parse_operator(input, &argument)?;
        let value: Expr = input.parse()?;
        Ok(Condition {
            argument,
            operator,
            operator_span,
            value,
        })
    }
}

/// Cuts the operator out of a condition, knowing only the shape of operators, not the
/// list (that lives in `dtrsfw::redis::caching`): a word (`in`, `not_in`), `not` and a
/// word (`not in`), or one or two joined punctuation characters (`<=`, `=~`), the second
/// only if it cannot start the value (`x<-1` is `<` then `-1`).
fn parse_operator(input: ParseStream<'_>, argument: &Ident) -> syn::Result<(String, Span)> {
    if input.peek(Ident::peek_any) {
        let word = Ident::parse_any(input)?;
        if word == "not" && input.peek(Ident::peek_any) {
            let next = Ident::parse_any(input)?;
            return Ok((format!("not {next}"), word.span()));
        }
        return Ok((word.to_string(), word.span()));
    }
    input.step(|cursor| {
        let Some((first, rest)) = cursor.punct() else {
            return Err(cursor.error(format!(
                "expected an operator after `{argument}` in cache_only_for (a word such as `in`, or a symbol such as `==`)"
            )));
        };
        let mut operator = first.as_char().to_string();
        let mut after = rest;
        if first.spacing() == Spacing::Joint
            && let Some((second, next)) = rest.punct()
            && !matches!(second.as_char(), '-' | '!' | '&' | '*' | '|' | '.')
        {
            operator.push(second.as_char());
            after = next;
        }
        Ok(((operator, first.span()), after))
    })
}

/// A name in `skip_cache_keys`: `request_id` or `"request_id"`.
struct Name {
    name: String,
    span: Span,
}

impl Parse for Name {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            Ok(Name {
                name: lit.value(),
                span: lit.span(),
            })
        } else {
            let ident = Ident::parse_any(input)?;
            Ok(Name {
                name: ident.unraw().to_string(),
                span: ident.span(),
            })
        }
    }
}

#[derive(Default)]
struct Options {
    redis: Option<Expr>,
    namespace: Option<Expr>,
    expire: Option<Expr>,
    conditions: Vec<Condition>,
    skip: Vec<Name>,
    local: Option<syn::LitBool>,
    local_capacity: Option<Expr>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let key = Ident::parse_any(input)?;
            let name = key.to_string();
            if seen.contains(&name) {
                return Err(syn::Error::new(key.span(), format!("`{name}` is given twice")));
            }
            if !matches!(
                name.as_str(),
                "redis" | "namespace" | "expire" | "cache_only_for" | "skip_cache_keys" | "local" | "local_capacity"
            ) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown key `{name}` in cache_wrapper; valid keys: {VALID_KEYS}"),
                ));
            }
            input.parse::<Token![=]>()?;
            match name.as_str() {
                "redis" => options.redis = Some(input.parse()?),
                "namespace" => options.namespace = Some(input.parse()?),
                "expire" => options.expire = Some(input.parse()?),
                "local" => options.local = Some(input.parse()?),
                "local_capacity" => options.local_capacity = Some(input.parse()?),
                "cache_only_for" => {
                    let content;
                    bracketed!(content in input);
                    options.conditions = content
                        .parse_terminated(Condition::parse, Token![,])?
                        .into_iter()
                        .collect();
                }
                _ => {
                    let content;
                    bracketed!(content in input);
                    options.skip = content.parse_terminated(Name::parse, Token![,])?.into_iter().collect();
                }
            }
            seen.push(name);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}

fn expand(attr: TokenStream2, item: &TokenStream2) -> syn::Result<TokenStream2> {
    let function: ItemFn = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new(
            item.span(),
            "#[cache_wrapper] applies to functions with a body (free functions and methods)",
        )
    })?;
    let options: Options = syn::parse2(attr)?;
    let fn_name = &function.sig.ident;

    // Argument names in declaration order; `self` is never part of the key.
    let mut arguments: Vec<Ident> = Vec::new();
    for input in &function.sig.inputs {
        if let FnArg::Typed(typed) = input {
            match &*typed.pat {
                Pat::Ident(pat) => arguments.push(pat.ident.clone()),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "#[cache_wrapper] needs every argument bound to a plain name (it keys the cache by name)",
                    ));
                }
            }
        }
    }
    let names: Vec<String> = arguments.iter().map(|a| a.unraw().to_string()).collect();
    let check = |name: &str, span: Span| -> syn::Result<()> {
        if names.iter().any(|n| n == name) {
            Ok(())
        } else {
            let list = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            Err(syn::Error::new(
                span,
                format!("`{name}` is not an argument of `{fn_name}`; its arguments are: {list}"),
            ))
        }
    };
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for condition in &options.conditions {
        if let Err(e) = check(&condition.argument.unraw().to_string(), condition.argument.span()) {
            push(e);
        }
    }
    for skipped in &options.skip {
        if let Err(e) = check(&skipped.name, skipped.span) {
            push(e);
        }
    }
    let Some(redis) = &options.redis else {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing `redis = ...` (a RedisInstance, or a reference to one)",
        ));
    };
    let Some(namespace) = &options.namespace else {
        return Err(syn::Error::new(Span::call_site(), "missing `namespace = \"...\"`"));
    };
    if let Some(errors) = errors {
        return Err(errors);
    }

    let dtrsfw = quote!(::dtrsfw::redis::caching);
    let n = names.len();
    let expire = options.expire.iter().map(|e| quote!(.expire(#e)));
    let conditions = options.conditions.iter().map(|c| {
        let argument = c.argument.unraw().to_string();
        let operator = &c.operator;
        let value = &c.value;
        quote!(.cache_only_for(#argument, #operator, &(#value)))
    });
    let operator_checks = operator_checks(&options.conditions, &dtrsfw);
    let skipped: Vec<&String> = options.skip.iter().map(|s| &s.name).collect();
    let skip = (!skipped.is_empty()).then(|| quote!(.skip_cache_keys([#(#skipped),*])));
    let local = local_tier(&options, &dtrsfw);
    let keyed = arguments
        .iter()
        .zip(&names)
        .filter(|(_, name)| !skipped.contains(name))
        .map(|(ident, name)| quote!(.arg(#name, &#ident)));

    let returns_result = match &function.sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    };
    let ret = match &function.sig.output {
        ReturnType::Type(_, ty) => quote!(#ty),
        ReturnType::Default => quote!(()),
    };
    let block = &function.block;
    let is_async = function.sig.asyncness.is_some();
    // The `CachedFunction` method: `[try_]call[_cloned][_async]`.
    let call = format_ident!(
        "{}call{}{}",
        if returns_result { "try_" } else { "" },
        if local.is_some() { "_cloned" } else { "" },
        if is_async { "_async" } else { "" }
    );
    let (body, direct) = if is_async {
        (
            quote!(async move {
                let __dtrsfw_ret: #ret = #block;
                #[allow(unreachable_code)]
                __dtrsfw_ret
            }),
            quote!(__dtrsfw_body.await),
        )
    } else {
        (quote!(move || -> #ret #block), quote!(__dtrsfw_body()))
    };
    let invoke = if is_async {
        quote!(__dtrsfw_cache.#call(__dtrsfw_redis, &__dtrsfw_args, __dtrsfw_body).await)
    } else {
        quote!(__dtrsfw_cache.#call(__dtrsfw_redis, &__dtrsfw_args, __dtrsfw_body))
    };

    let attrs = &function.attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #operator_checks
            static __DTRSFW_CACHE: ::std::sync::OnceLock<::core::option::Option<#dtrsfw::CachedFunction>> =
                ::std::sync::OnceLock::new();
            let __dtrsfw_cache = __DTRSFW_CACHE.get_or_init(|| {
                #dtrsfw::__private::build(
                    #dtrsfw::CachedFunction::builder(#namespace, ::core::convert::identity::<[&'static str; #n]>([#(#names),*]))
                        #(#expire)*
                        #(#conditions)*
                        #skip
                        #local
                )
            });
            let __dtrsfw_args = __dtrsfw_cache.as_ref().map(|_| #dtrsfw::CacheArgs::new() #(#keyed)*);
            let __dtrsfw_body = #body;
            match (__dtrsfw_cache, __dtrsfw_args) {
                (::core::option::Option::Some(__dtrsfw_cache), ::core::option::Option::Some(__dtrsfw_args)) => {
                    // Bound first so a temporary `RedisInstance` lives through the call.
                    let __dtrsfw_redis_owner = &(#redis);
                    let __dtrsfw_redis = #dtrsfw::__private::instance(__dtrsfw_redis_owner);
                    #invoke
                }
                _ => #direct,
            }
        }
    })
}

/// Unknown operators fail to compile, with dtrsfw's message and list of operators, at
/// the user's operator: one constant per condition, evaluated against dtrsfw's one list.
fn operator_checks(conditions: &[Condition], dtrsfw: &TokenStream2) -> TokenStream2 {
    conditions
        .iter()
        .map(|c| {
            let operator = &c.operator;
            quote_spanned! {c.operator_span=>
                const _: () = if let ::core::option::Option::Some(__dtrsfw_unknown) =
                    #dtrsfw::__private::unknown_operator(#operator)
                {
                    ::core::panic!("{}", __dtrsfw_unknown.as_str())
                };
            }
        })
        .collect()
}

/// `.local(LocalTier::new()[.max_entries(n)])` when `local = true` or `local_capacity = n`.
fn local_tier(options: &Options, dtrsfw: &TokenStream2) -> Option<TokenStream2> {
    let on = options.local.as_ref().is_some_and(|b| b.value);
    let capacity = options.local_capacity.iter().map(|n| quote!(.max_entries(#n)));
    (on || options.local_capacity.is_some()).then(|| quote!(.local(#dtrsfw::LocalTier::new() #(#capacity)*)))
}
