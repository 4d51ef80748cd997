//! The form a value takes in the local tier: its JSON (for `call*`, whose `T` need not
//! be `Clone`) or the decoded value itself (for `call_cloned*`, whose hit is a clone).
//! The flow of a cached call is written once over [`LocalForm`]; only what goes into the
//! store and what a hit does with it differ.

use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;

/// What the store keeps for one key: type-erased, so one store serves both forms.
pub(crate) type Kept = Arc<dyn Any + Send + Sync>;

/// How values of `T` are kept locally and served back.
pub(crate) trait LocalForm<T> {
    /// What to keep for `value` (read from Redis; `json` is its JSON).
    fn keep(value: &T, json: &Arc<[u8]>) -> Kept;

    /// A hit: the value back, or `None` when `kept` is not of this form and type (a
    /// function called both ways, or with two types), which the Redis path then serves.
    fn serve(kept: &Kept) -> Option<T>;
}

/// JSON kept, decoded on every hit (`call`, `try_call`, `call_async`, `try_call_async`).
pub(crate) struct AsJson;

impl<T: DeserializeOwned> LocalForm<T> for AsJson {
    fn keep(_: &T, json: &Arc<[u8]>) -> Kept {
        Arc::new(json.clone())
    }

    fn serve(kept: &Kept) -> Option<T> {
        serde_json::from_slice(kept.downcast_ref::<Arc<[u8]>>()?).ok()
    }
}

/// The decoded value kept, cloned on every hit (the `call_cloned*` methods): no JSON.
pub(crate) struct Typed;

impl<T: Clone + Send + Sync + 'static> LocalForm<T> for Typed {
    fn keep(value: &T, _: &Arc<[u8]>) -> Kept {
        Arc::new(value.clone())
    }

    fn serve(kept: &Kept) -> Option<T> {
        kept.downcast_ref::<T>().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_serves_what_it_kept_and_refuses_the_other() {
        let json: Arc<[u8]> = Arc::from(&b"[1,2]"[..]);
        let value = vec![1_u8, 2];
        let as_json = <AsJson as LocalForm<Vec<u8>>>::keep(&value, &json);
        let typed = <Typed as LocalForm<Vec<u8>>>::keep(&value, &json);
        assert_eq!(<AsJson as LocalForm<Vec<u8>>>::serve(&as_json), Some(vec![1, 2]));
        assert_eq!(<Typed as LocalForm<Vec<u8>>>::serve(&typed), Some(vec![1, 2]));
        assert_eq!(<Typed as LocalForm<Vec<u8>>>::serve(&as_json), None);
        assert_eq!(<AsJson as LocalForm<Vec<u8>>>::serve(&typed), None);
        assert_eq!(<Typed as LocalForm<String>>::serve(&typed), None, "another type");
    }
}
