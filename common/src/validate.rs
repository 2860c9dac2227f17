//! The one way a request body becomes a validated value, with a `422` that
//! names every invalid field at once.
//!
//! serde first reads the body's shape, [`FromBody::Raw`]: a struct of plain
//! fields, or a JSON object where the service words its own messages (a
//! strict integer, an explicit `null`). [`FromBody::check`] then checks
//! each field into its type with [`field`], and [`all`] combines the
//! fields' results: every value, or one error listing each bad field in
//! order. A field that failed is never left as a `None` to unwrap later.
//! Handlers call [`Req::body`](crate::Req::body), or [`from_bytes`] when
//! they read the bytes themselves (to hash or verify them first).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// A value a request body is checked into.
pub trait FromBody: Sized {
    /// What serde reads first.
    type Raw: DeserializeOwned;

    /// Checks every field; `Err` names each bad one.
    fn check(raw: Self::Raw) -> Result<Self, ApiError>;
}

/// Parses and checks a body already read: malformed JSON is `400`, a body
/// of the wrong shape or with bad fields `422`.
pub fn from_bytes<T: FromBody>(bytes: &[u8]) -> Result<T, ApiError> {
    T::check(crate::json::parse_json(bytes)?)
}

/// One field's outcome.
pub type Field<T> = Result<T, FieldError>;

/// Names the error of one field's check.
pub fn field<T>(name: &str, checked: Result<T, String>) -> Field<T> {
    checked.map_err(|message| FieldError {
        field: name.to_string(),
        message,
    })
}

/// The body as a JSON object; anything else is `422` on `body`.
pub fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid_field("body", "must be a JSON object")),
    }
}

/// A tuple of field results that are valid only together.
pub trait AllFields {
    type Values;
    fn all(self) -> Result<Self::Values, ApiError>;
}

/// Every field's value, or one `422` naming each invalid field in order.
pub fn all<F: AllFields>(fields: F) -> Result<F::Values, ApiError> {
    fields.all()
}

macro_rules! all_fields {
    ($($t:ident $v:ident),+) => {
        impl<$($t),+> AllFields for ($(Field<$t>,)+) {
            type Values = ($($t,)+);

            fn all(self) -> Result<Self::Values, ApiError> {
                match self {
                    ($(Ok($v),)+) => Ok(($($v,)+)),
                    ($($v,)+) => Err(ApiError::validation(
                        [$($v.err()),+].into_iter().flatten().collect(),
                    )),
                }
            }
        }
    };
}

all_fields!(A a);
all_fields!(A a, B b);
all_fields!(A a, B b, C c);
all_fields!(A a, B b, C c, D d);
all_fields!(A a, B b, C c, D d, E e);
all_fields!(A a, B b, C c, D d, E e, F f);
all_fields!(A a, B b, C c, D d, E e, F f, G g);
all_fields!(A a, B b, C c, D d, E e, F f, G g, H h);

/// Two parts checked apart (a query's paging and its filters) that are
/// valid only together: both values, or one `422` listing the errors of
/// both, the first part's first.
pub fn both<A, B>(a: Result<A, ApiError>, b: Result<B, ApiError>) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(mut a), Err(b)) if is_validation(&a) && is_validation(&b) => {
            a.errors.extend(b.errors);
            Err(ApiError::validation(a.errors))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn is_validation(e: &ApiError) -> bool {
    e.code == "validation_failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positive(n: i64) -> Result<i64, String> {
        if n > 0 {
            Ok(n)
        } else {
            Err("must be positive".into())
        }
    }

    #[test]
    fn all_valid_fields_give_their_values() {
        let (a, b) = all((field("a", positive(1)), field("b", positive(2)))).unwrap();
        assert_eq!((a, b), (1, 2));
    }

    #[test]
    fn every_invalid_field_is_named_in_order() {
        let e = all((
            field("a", positive(0)),
            field("b", positive(1)),
            field("c", positive(-1)),
        ))
        .unwrap_err();
        assert_eq!(e.status, 422);
        let names: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(e.errors[0].message, "must be positive");
    }

    #[test]
    fn only_objects_are_bodies() {
        assert!(object(serde_json::json!({})).is_ok());
        let e = object(serde_json::json!([1])).unwrap_err();
        assert_eq!(e.errors[0].field, "body");
    }

    #[test]
    fn both_parts_errors_are_listed_together() {
        let a = all((field("limit", positive(0)),));
        let b = all((field("sort", positive(0)),));
        let e = both(a, b).unwrap_err();
        let names: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["limit", "sort"]);
        assert_eq!(e.detail, "2 fields are invalid");
    }
}
