//! What a shopper does next: the weighted mix of journey steps and one
//! shopper session's state (is there something in the cart, an invoice to
//! pay), which turns a drawn step into one that makes sense — a checkout
//! with an empty cart puts something in it first, and a checkout is always
//! followed by paying its invoice.

use std::collections::VecDeque;
use std::fmt;

use serde_json::Value;

/// The steps a mix weighs, by the names `--mix` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Browse,
    ViewCart,
    AddToCart,
    List,
    Checkout,
    Search,
    Orders,
}

pub const KINDS: [(&str, Kind); 7] = [
    ("browse", Kind::Browse),
    ("view_cart", Kind::ViewCart),
    ("add_to_cart", Kind::AddToCart),
    ("list", Kind::List),
    ("checkout", Kind::Checkout),
    ("search", Kind::Search),
    ("orders", Kind::Orders),
];

/// Step weights. The default is Online Boutique's locustfile (browse
/// product 10, view cart 3, add to cart 2, index 1, checkout 1) plus
/// search 2 and order history 1, which that shop does not have.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: [u32; KINDS.len()],
}

impl Mix {
    pub const DEFAULT_SPEC: &'static str =
        "browse=10,view_cart=3,add_to_cart=2,list=1,checkout=1,search=2,orders=1";

    /// `name=weight,…`; names left out weigh 0.
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let mut weights = [0u32; KINDS.len()];
        let mut seen = [false; KINDS.len()];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=weight"))?;
            let i = KINDS
                .iter()
                .position(|(n, _)| *n == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown step `{}` (steps: {})",
                        name.trim(),
                        names.join(", ")
                    )
                })?;
            if seen[i] {
                return Err(format!("step `{}` is given twice", name.trim()));
            }
            seen[i] = true;
            weights[i] = weight
                .trim()
                .parse()
                .map_err(|_| format!("the weight of `{}` is not a whole number", name.trim()))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err("every weight is 0: nothing to do".into());
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: Kind) -> u32 {
        let i = KINDS.iter().position(|(_, k)| *k == kind).expect("listed");
        self.weights[i]
    }

    fn total(&self) -> u32 {
        self.weights.iter().sum()
    }

    /// A step drawn by weight, `exclude` drawn as if it weighed 0 (unless
    /// nothing else weighs anything).
    pub fn draw(&self, rng: &mut fastrand::Rng, exclude: Option<Kind>) -> Kind {
        let weight_of = |i: usize| {
            if Some(KINDS[i].1) == exclude {
                0
            } else {
                self.weights[i]
            }
        };
        let total: u32 = (0..KINDS.len()).map(weight_of).sum();
        if total == 0 {
            return self.draw(rng, None);
        }
        let mut pick = rng.u32(0..total);
        for (i, (_, kind)) in KINDS.iter().enumerate() {
            let w = weight_of(i);
            if pick < w {
                return *kind;
            }
            pick -= w;
        }
        unreachable!("pick < total")
    }

    /// The share of steps that are checkouts, counting the payment each
    /// checkout brings as a step of its own.
    pub fn checkout_share(&self) -> f64 {
        let checkout = f64::from(self.weight(Kind::Checkout));
        checkout / (f64::from(self.total()) + checkout)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = KINDS
            .iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|((n, _), w)| format!("{n}={w}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One product as the catalog listed it: the id as the shop gave it (a
/// string or a number) and as it goes into a URL.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: Value,
    pub path_id: String,
}

impl Product {
    pub fn new(id: Value) -> Option<Product> {
        let path_id = match &id {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(Product { id, path_id })
    }
}

/// What the shoppers browse and search: the catalog's products and words
/// from their names.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub products: Vec<Product>,
    pub words: Vec<String>,
}

impl Catalog {
    pub fn new(products: Vec<(Value, String)>) -> Catalog {
        let mut words: Vec<String> = products
            .iter()
            .flat_map(|(_, name)| name.split_whitespace())
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            // Plain words only, so a search URL needs no escaping.
            .filter(|w| w.chars().count() >= 3 && w.chars().all(char::is_alphanumeric))
            .collect();
        words.sort();
        words.dedup();
        Catalog {
            products: products
                .into_iter()
                .filter_map(|(id, _)| Product::new(id))
                .collect(),
            words,
        }
    }

    fn product(&self, rng: &mut fastrand::Rng) -> Product {
        self.products[rng.usize(0..self.products.len())].clone()
    }
}

/// An order the journey placed, to be paid in the session's next step.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub order_id: String,
    pub invoice_id: String,
}

/// One request of a journey.
#[derive(Debug, Clone)]
pub enum Step {
    Register,
    Login,
    Browse(Product),
    List {
        offset: u32,
    },
    Search(String),
    ViewCart,
    AddToCart {
        product: Product,
        quantity: u32,
    },
    /// The Idempotency-Key goes with it.
    Checkout {
        key: String,
    },
    Pay(Placed),
    Orders,
}

impl Step {
    /// The endpoint the report files this step under.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Step::Register => "POST /user/",
            Step::Login => "POST /user/login",
            Step::Browse(_) => "GET /product/{id}",
            Step::List { .. } => "GET /products/",
            Step::Search(_) => "GET /products/?q=",
            Step::ViewCart => "GET /user/{uid}/cart/",
            Step::AddToCart { .. } => "POST /user/{uid}/cart/",
            Step::Checkout { .. } => "POST /user/{uid}/cart/checkout",
            Step::Pay(_) => "POST /invoices/{id}/pay",
            Step::Orders => "GET /user/{uid}/orders/",
        }
    }
}

/// How a step went, as far as the session's next step cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    /// A checkout that placed this order.
    Placed(Placed),
    /// The cart turned out empty (409 `cart_empty`).
    CartEmpty,
    Failed,
}

/// One shopper's visit, a number of steps long (the runner pairs it with
/// the account it shops with).
#[derive(Debug)]
pub struct Session {
    steps_left: u32,
    /// Register and/or log in first, in this order.
    auth: VecDeque<Step>,
    cart_filled: bool,
    checkout_next: bool,
    to_pay: Option<Placed>,
}

impl Session {
    pub fn new(steps: u32, auth: Vec<Step>) -> Session {
        Session {
            steps_left: steps,
            auth: auth.into(),
            cart_filled: false,
            checkout_next: false,
            to_pay: None,
        }
    }

    /// Whether the visit is over (the shopper leaves once an invoice it
    /// was given is paid, never in between).
    pub fn done(&self) -> bool {
        self.steps_left == 0 && self.to_pay.is_none()
    }

    /// The next step. `may_order` says whether this account may place
    /// another order (its mail budget); if not, a drawn checkout is
    /// drawn again without checkout.
    pub fn next(
        &mut self,
        mix: &Mix,
        catalog: &Catalog,
        rng: &mut fastrand::Rng,
        may_order: impl FnOnce() -> bool,
    ) -> Step {
        self.steps_left = self.steps_left.saturating_sub(1);
        if let Some(auth) = self.auth.pop_front() {
            return auth;
        }
        if let Some(placed) = self.to_pay.take() {
            return Step::Pay(placed);
        }
        let kind = if std::mem::take(&mut self.checkout_next) {
            Kind::Checkout
        } else {
            mix.draw(rng, None)
        };
        let kind = match kind {
            Kind::Checkout if !self.cart_filled => {
                // Something in the cart first, then the checkout.
                self.checkout_next = true;
                Kind::AddToCart
            }
            Kind::Checkout if !may_order() => mix.draw(rng, Some(Kind::Checkout)),
            k => k,
        };
        match kind {
            Kind::Browse => Step::Browse(catalog.product(rng)),
            Kind::List => Step::List {
                offset: if catalog.products.len() > 20 {
                    rng.u32(0..2) * 20
                } else {
                    0
                },
            },
            Kind::Search => match catalog.words.is_empty() {
                true => Step::List { offset: 0 },
                false => Step::Search(catalog.words[rng.usize(0..catalog.words.len())].clone()),
            },
            Kind::ViewCart => Step::ViewCart,
            Kind::AddToCart => Step::AddToCart {
                product: catalog.product(rng),
                quantity: rng.u32(1..=3),
            },
            Kind::Checkout => Step::Checkout {
                key: uuid::Uuid::new_v4().to_string(),
            },
            Kind::Orders => Step::Orders,
        }
    }

    /// Takes in how `step` went.
    pub fn record(&mut self, step: &Step, outcome: &Outcome) {
        match (step, outcome) {
            (Step::AddToCart { .. }, Outcome::Ok) => self.cart_filled = true,
            (Step::AddToCart { .. }, _) => self.checkout_next = false,
            (Step::Checkout { .. }, Outcome::Placed(placed)) => {
                self.cart_filled = false;
                self.to_pay = Some(placed.clone());
            }
            (Step::Checkout { .. }, Outcome::CartEmpty) => self.cart_filled = false,
            // An account that could not log in or register has nothing to
            // browse with: end the visit.
            (Step::Login | Step::Register, Outcome::Failed) => {
                self.steps_left = 0;
                self.auth.clear();
                self.to_pay = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::new(vec![
            (json!("p1"), "Blue Mug".into()),
            (json!(2), "Kettle, steel".into()),
        ])
    }

    #[test]
    fn mix_parses_and_rejects() {
        let m = Mix::parse(Mix::DEFAULT_SPEC).unwrap();
        assert_eq!(m.weight(Kind::Browse), 10);
        assert_eq!(m.to_string(), Mix::DEFAULT_SPEC);
        let m = Mix::parse("browse=1").unwrap();
        assert_eq!(m.weight(Kind::Checkout), 0);
        assert!(Mix::parse("browse=x").is_err());
        assert!(Mix::parse("fly=1").unwrap_err().contains("unknown step"));
        assert!(Mix::parse("browse=1,browse=2").is_err());
        assert!(Mix::parse("browse=0").is_err());
    }

    #[test]
    fn draws_follow_the_weights() {
        let m = Mix::parse("browse=3,list=1").unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 40_000;
        let browses = (0..n)
            .filter(|_| m.draw(&mut rng, None) == Kind::Browse)
            .count();
        let share = browses as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        assert!((0..1000).all(|_| m.draw(&mut rng, Some(Kind::Browse)) == Kind::List));
        // Excluding the only step left draws it anyway.
        let only = Mix::parse("checkout=1").unwrap();
        assert_eq!(only.draw(&mut rng, Some(Kind::Checkout)), Kind::Checkout);
    }

    #[test]
    fn checkout_share_counts_the_payment() {
        let m = Mix::parse("browse=2,checkout=1").unwrap();
        assert!((m.checkout_share() - 0.25).abs() < 1e-9);
    }

    #[test]
    fn catalog_words_and_ids() {
        let c = catalog();
        assert_eq!(c.words, vec!["blue", "kettle", "mug", "steel"]);
        assert_eq!(c.products[1].path_id, "2");
        assert!(Product::new(json!(null)).is_none());
    }

    #[test]
    fn a_checkout_fills_the_cart_first_and_is_paid_next() {
        let mix = Mix::parse("checkout=1").unwrap();
        let c = catalog();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut s = Session::new(4, vec![Step::Login]);
        assert!(matches!(s.next(&mix, &c, &mut rng, || true), Step::Login));
        s.record(&Step::Login, &Outcome::Ok);
        let add = s.next(&mix, &c, &mut rng, || true);
        assert!(matches!(add, Step::AddToCart { .. }), "{add:?}");
        s.record(&add, &Outcome::Ok);
        let checkout = s.next(&mix, &c, &mut rng, || true);
        assert!(matches!(checkout, Step::Checkout { .. }), "{checkout:?}");
        let placed = Placed {
            order_id: "o1".into(),
            invoice_id: "i1".into(),
        };
        s.record(&checkout, &Outcome::Placed(placed.clone()));
        // Out of steps, but the invoice is paid before the shopper leaves.
        assert!(!s.done());
        match s.next(&mix, &c, &mut rng, || true) {
            Step::Pay(p) => assert_eq!(p, placed),
            other => panic!("{other:?}"),
        }
        assert!(s.done());
    }

    #[test]
    fn no_order_past_the_mail_budget() {
        let mix = Mix::parse("checkout=5,orders=1").unwrap();
        let c = catalog();
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = Session::new(100, vec![]);
        s.record(
            &Step::AddToCart {
                product: c.products[0].clone(),
                quantity: 1,
            },
            &Outcome::Ok,
        );
        for _ in 0..50 {
            let step = s.next(&mix, &c, &mut rng, || false);
            assert!(matches!(step, Step::Orders), "{step:?}");
        }
    }

    #[test]
    fn a_failed_login_ends_the_visit() {
        let mut s = Session::new(10, vec![Step::Register, Step::Login]);
        let mut rng = fastrand::Rng::with_seed(1);
        let step = s.next(&Mix::parse("list=1").unwrap(), &catalog(), &mut rng, || {
            true
        });
        assert!(matches!(step, Step::Register));
        s.record(&step, &Outcome::Failed);
        assert!(s.done());
    }
}
