//! Parse-don't-validate types for what admins send us, and the product as
//! the API shows it.
//!
//! Request bodies are first read as loose JSON values ([`ProductFields`]) so
//! that every field is checked here, with our own messages, and a `422`
//! names all bad fields at once. Numbers are strict: `12`, not `12.0`,
//! `12.5` or `"12"` — money must never pass through a float.

use common::money::Currency;
use common::validate::{all, field, Field, FromBody};
use common::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Ten billion in major units. Far above any real price, and low enough
/// that a cart's `price × quantity` sums stay far from `i64` overflow.
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000_000;
pub const MAX_CATEGORY_CHARS: usize = 40;
pub const DEFAULT_CATEGORY: &str = "general";
pub const MAX_IMAGE_URL_CHARS: usize = 500;

/// A product name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<ProductName, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(ProductName(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A description of at most 10 000 characters; may be empty and may hold
/// line breaks, but not NUL (PostgreSQL cannot store it in TEXT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Description, String> {
        if raw.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "must be at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        if raw.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        Ok(Description(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A price in minor units, 0 to [`MAX_PRICE_CENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceCents(i64);

impl PriceCents {
    pub fn parse(raw: i64) -> Result<PriceCents, String> {
        match raw {
            n if n < 0 => Err("must not be negative".into()),
            n if n > MAX_PRICE_CENTS => Err(format!("must be at most {MAX_PRICE_CENTS}")),
            n => Ok(PriceCents(n)),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Units in stock, 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock(i64);

impl Stock {
    pub fn parse(raw: i64) -> Result<Stock, String> {
        if raw < 0 {
            Err("must not be negative".into())
        } else {
            Ok(Stock(raw))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A category: a lowercase slug of 1 to 40 ASCII letters, digits and
/// hyphens, so it is safe in URLs (`?category=kitchen`) without encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Category(String);

impl Category {
    pub fn parse(raw: &str) -> Result<Category, String> {
        let ok = (1..=MAX_CATEGORY_CHARS).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Category(raw.to_string()))
        } else {
            Err(format!(
                "must be 1 to {MAX_CATEGORY_CHARS} lowercase letters, digits or hyphens, such as \"kitchen\""
            ))
        }
    }

    pub fn default_category() -> Category {
        Category(DEFAULT_CATEGORY.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A picture's address: site-relative (`/assets/…`, served beside the
/// storefront) or an absolute http(s) URL; at most 500 characters. Kept as
/// sent, so the storefront puts exactly this into `<img src>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    pub fn parse(raw: &str) -> Result<ImageUrl, String> {
        const SHAPE: &str =
            "must be a site-relative path starting with \"/\" or an absolute http(s) URL";
        if raw.chars().count() > MAX_IMAGE_URL_CHARS {
            return Err(format!("must be at most {MAX_IMAGE_URL_CHARS} characters"));
        }
        // Whitespace, control characters and backslashes are never part of
        // a URL as written; browsers would "repair" them in surprising ways.
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(format!("{SHAPE}, without spaces or control characters"));
        }
        let ok = if raw.starts_with('/') {
            // `//host/x` is protocol-relative: another site, not ours.
            !raw.starts_with("//")
        } else {
            url::Url::parse(raw).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            })
        };
        if ok {
            Ok(ImageUrl(raw.to_string()))
        } else {
            Err(SHAPE.into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A JSON integer, strictly: a fraction (even `12.0`), a string or
/// anything else is refused with a message saying so.
pub fn json_integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ok(i),
            (None, Some(_)) => Err("is too large".into()),
            (None, None) => Err("must be an integer, not a fraction".into()),
        },
        Value::String(_) => Err("must be a JSON number, not a string".into()),
        _ => Err("must be an integer".into()),
    }
}

fn json_string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_string())
}

/// The fields of a create or update body, not yet checked: `None` when
/// absent, `Some(Null)` when sent as `null`. Unknown fields (`id`,
/// `created_at`, anything) are ignored.
#[derive(Debug, Default)]
pub struct ProductFields {
    pub name: Option<Value>,
    pub description: Option<Value>,
    pub price_cents: Option<Value>,
    pub currency: Option<Value>,
    pub stock: Option<Value>,
    pub category: Option<Value>,
    pub image_url: Option<Value>,
}

impl ProductFields {
    /// Takes the body as a JSON object, so an array or a bare value is
    /// refused when it is read rather than read positionally.
    pub fn from_object(mut body: Map<String, Value>) -> ProductFields {
        ProductFields {
            name: body.remove("name"),
            description: body.remove("description"),
            price_cents: body.remove("price_cents"),
            currency: body.remove("currency"),
            stock: body.remove("stock"),
            category: body.remove("category"),
            image_url: body.remove("image_url"),
        }
    }
}

/// A field create needs: absent or `null` is refused.
fn required<T>(
    name: &str,
    value: &Option<Value>,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Field<T> {
    field(
        name,
        match value {
            None => Err("is required".into()),
            Some(Value::Null) => Err("must not be null".into()),
            Some(x) => parse(x),
        },
    )
}

/// A field create fills in when absent or `null`.
fn defaulted<T>(
    name: &str,
    value: &Option<Value>,
    default: impl FnOnce() -> T,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Field<T> {
    match value {
        None | Some(Value::Null) => Ok(default()),
        Some(x) => field(name, parse(x)),
    }
}

/// A field an update may leave out (`None`); `null` is refused.
fn optional<T>(
    name: &str,
    value: &Option<Value>,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Field<Option<T>> {
    field(
        name,
        match value {
            None => Ok(None),
            Some(Value::Null) => Err("must not be null".into()),
            Some(x) => parse(x).map(Some),
        },
    )
}

fn name_of(value: &Value) -> Result<ProductName, String> {
    ProductName::parse(json_string(value)?)
}

fn description_of(value: &Value) -> Result<Description, String> {
    Description::parse(json_string(value)?)
}

fn currency_of(value: &Value) -> Result<Currency, String> {
    Currency::parse(json_string(value)?)
}

fn price_of(value: &Value) -> Result<PriceCents, String> {
    PriceCents::parse(json_integer(value)?)
}

fn stock_of(value: &Value) -> Result<Stock, String> {
    Stock::parse(json_integer(value)?)
}

fn category_of(value: &Value) -> Result<Category, String> {
    Category::parse(json_string(value)?)
}

/// `null` is a value here: the product has no picture.
fn image_url_of(value: &Value) -> Result<Option<ImageUrl>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => ImageUrl::parse(s).map(Some),
        _ => Err("must be a string or null".into()),
    }
}

/// A valid new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: ProductName,
    pub description: Description,
    pub price_cents: PriceCents,
    pub currency: Currency,
    pub stock: Stock,
    pub category: Category,
    pub image_url: Option<ImageUrl>,
}

impl NewProduct {
    /// `name`, `description` and `price_cents` are required; `currency`
    /// defaults to USD, `stock` to 0 and `category` to `general`, also when
    /// sent as `null`; `image_url` to none.
    pub fn from_fields(f: &ProductFields) -> Result<NewProduct, ApiError> {
        let (name, description, price_cents, currency, stock, category, image_url) = all((
            required("name", &f.name, name_of),
            required("description", &f.description, description_of),
            required("price_cents", &f.price_cents, price_of),
            defaulted("currency", &f.currency, Currency::default, currency_of),
            defaulted("stock", &f.stock, || Stock(0), stock_of),
            defaulted(
                "category",
                &f.category,
                Category::default_category,
                category_of,
            ),
            // `null` is a value here: no picture.
            match &f.image_url {
                None => Ok(None),
                Some(x) => field("image_url", image_url_of(x)),
            },
        ))?;
        Ok(NewProduct {
            name,
            description,
            price_cents,
            currency,
            stock,
            category,
            image_url,
        })
    }
}

impl FromBody for NewProduct {
    type Raw = Map<String, Value>;

    fn check(body: Map<String, Value>) -> Result<NewProduct, ApiError> {
        NewProduct::from_fields(&ProductFields::from_object(body))
    }
}

/// A valid partial update: `None` leaves the column as it is.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price_cents: Option<PriceCents>,
    pub currency: Option<Currency>,
    pub stock: Option<Stock>,
    pub category: Option<Category>,
    /// `Some(None)` removes the picture.
    pub image_url: Option<Option<ImageUrl>>,
}

impl ProductChanges {
    /// Every present field is checked as on create. An explicit `null` is
    /// refused, except for `image_url` where it removes the picture: no
    /// other field can be cleared, and silently ignoring it would hide a
    /// client's mistake.
    pub fn from_fields(f: &ProductFields) -> Result<ProductChanges, ApiError> {
        let (name, description, price_cents, currency, stock, category, image_url) = all((
            optional("name", &f.name, name_of),
            optional("description", &f.description, description_of),
            optional("price_cents", &f.price_cents, price_of),
            optional("currency", &f.currency, currency_of),
            optional("stock", &f.stock, stock_of),
            optional("category", &f.category, category_of),
            match &f.image_url {
                None => Ok(None),
                Some(x) => field("image_url", image_url_of(x)).map(Some),
            },
        ))?;
        Ok(ProductChanges {
            name,
            description,
            price_cents,
            currency,
            stock,
            category,
            image_url,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price_cents.is_none()
            && self.currency.is_none()
            && self.stock.is_none()
            && self.category.is_none()
            && self.image_url.is_none()
    }
}

impl FromBody for ProductChanges {
    type Raw = Map<String, Value>;

    fn check(body: Map<String, Value>) -> Result<ProductChanges, ApiError> {
        ProductChanges::from_fields(&ProductFields::from_object(body))
    }
}

/// A stored product, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub category: String,
    pub image_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One entry of `GET /products/categories`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCount {
    pub name: String,
    pub count: i64,
}

/// The body of `GET /products/categories` (a struct, so `name` comes
/// before `count` as documented).
#[derive(Debug, Serialize)]
pub struct CategoryList {
    pub items: Vec<CategoryCount>,
}

/// Product ids are UUIDs; anything else cannot exist (`404`, not `500`).
/// The canonical form is returned so `…/PRODUCT-ID-IN-CAPS` finds it too.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> ProductFields {
        match v {
            Value::Object(map) => ProductFields::from_object(map),
            other => panic!("not an object: {other}"),
        }
    }

    fn bad_fields(err: ApiError) -> Vec<String> {
        assert_eq!(err.status, 422);
        err.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(json_integer(&json!(12)), Ok(12));
        assert_eq!(json_integer(&json!(-3)), Ok(-3));
        for bad in [
            json!(12.0),
            json!(12.5),
            json!("12"),
            json!(true),
            json!([1]),
            json!(u64::MAX),
        ] {
            assert!(json_integer(&bad).is_err(), "{bad}");
        }
        // 1e2 is a float in JSON even though its value is whole.
        let exp: Value = serde_json::from_str("1e2").unwrap();
        assert!(json_integer(&exp).is_err());
    }

    #[test]
    fn a_full_product_parses_with_defaults() {
        let p = NewProduct::from_fields(&fields(json!({
            "name": "  Mug ", "description": "", "price_cents": 0, "id": "ignored"
        })))
        .unwrap();
        assert_eq!(p.name.as_str(), "Mug");
        assert_eq!(p.currency.as_str(), "USD");
        assert_eq!(p.stock.get(), 0);
        assert_eq!(p.price_cents.get(), 0);
        assert_eq!(p.category.as_str(), "general");
        assert_eq!(p.image_url, None);
    }

    #[test]
    fn categories_are_slugs() {
        for good in [
            "kitchen",
            "home-garden",
            "a",
            "x2",
            &"z".repeat(MAX_CATEGORY_CHARS),
        ] {
            assert!(Category::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Kitchen",
            "home garden",
            "home_garden",
            "café",
            "a/b",
            &"z".repeat(41),
        ] {
            assert!(Category::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_urls_are_site_relative_or_absolute_http() {
        for good in [
            "/assets/products/mug.svg",
            "/",
            "https://cdn.example.com/a/b.png?w=200#x",
            "http://127.0.0.1:8080/x.jpg",
        ] {
            assert!(ImageUrl::parse(good).is_ok(), "{good}");
        }
        let long = format!("/{}", "a".repeat(MAX_IMAGE_URL_CHARS));
        for bad in [
            "",
            "mug.svg",
            "//evil.example/x.png",
            "javascript:alert(1)",
            "data:image/svg+xml,<svg/>",
            "ftp://example.com/x.png",
            "https://",
            "/a b.svg",
            "/a\tb",
            "/a\\b",
            "https://example.com/\u{0}",
            long.as_str(),
        ] {
            assert!(ImageUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let err = NewProduct::from_fields(&fields(json!({
            "name": " ", "description": 5, "price_cents": 12.5, "currency": "usd", "stock": -1
        })))
        .unwrap_err();
        assert_eq!(
            bad_fields(err),
            ["name", "description", "price_cents", "currency", "stock"]
        );
        let err = NewProduct::from_fields(&fields(json!({}))).unwrap_err();
        assert_eq!(bad_fields(err), ["name", "description", "price_cents"]);
    }

    #[test]
    fn limits() {
        assert!(ProductName::parse(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(ProductName::parse(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(ProductName::parse("a\nb").is_err());
        assert!(Description::parse(&"x".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        assert!(Description::parse(&"x".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(Description::parse("line\nline").is_ok());
        assert!(Description::parse("nul\0").is_err());
        assert!(PriceCents::parse(MAX_PRICE_CENTS).is_ok());
        assert!(PriceCents::parse(MAX_PRICE_CENTS + 1).is_err());
        for bad in ["US", "USDD", "usd", "U5D", "ÜSD"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert!(Currency::parse("EUR").is_ok());
    }

    #[test]
    fn updates_check_only_present_fields_and_refuse_null() {
        let c = ProductChanges::from_fields(&fields(json!({"stock": 3}))).unwrap();
        assert_eq!(c.stock.map(Stock::get), Some(3));
        assert!(c.name.is_none());
        assert!(ProductChanges::from_fields(&fields(json!({})))
            .unwrap()
            .is_empty());
        let err = ProductChanges::from_fields(&fields(json!({"name": null, "price_cents": "1"})))
            .unwrap_err();
        assert_eq!(bad_fields(err), ["name", "price_cents"]);
    }

    #[test]
    fn ids() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(parse_id(&id.to_uppercase()), Some(id));
        assert_eq!(parse_id("42"), None);
        assert_eq!(parse_id("' OR 1=1 --"), None);
    }
}
