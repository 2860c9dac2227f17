//! The generator's own account of what the shop was asked to do and said
//! it did — accounts registered, items added, orders placed and paid — to
//! hold the shop's orders, mail and stats against at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// One pool account as the journeys used it.
#[derive(Debug, Default, Clone)]
pub struct AccountLedger {
    /// Registered by this run (so it has exactly one welcome email and one
    /// `user_registered` event).
    pub registered: bool,
    /// Answers `201` to POST /user/{uid}/cart/.
    pub items_added: u64,
    /// Orders checkout answered `201` with, by id (a retry's replay has the
    /// same id, so this is a set).
    pub orders: BTreeSet<String>,
    /// Orders whose invoice the journey paid (`200` from the provider).
    pub paid: BTreeSet<String>,
    /// Checkouts whose answer never came (timeout, broken connection):
    /// the shop may or may not have placed them.
    pub unknown_checkouts: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    accounts: Mutex<BTreeMap<String, AccountLedger>>,
}

impl Ledger {
    fn with(&self, user_id: &str, f: impl FnOnce(&mut AccountLedger)) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        f(accounts.entry(user_id.to_string()).or_default());
    }

    pub fn registered(&self, user_id: &str) {
        self.with(user_id, |a| a.registered = true);
    }

    pub fn item_added(&self, user_id: &str) {
        self.with(user_id, |a| a.items_added += 1);
    }

    pub fn order_placed(&self, user_id: &str, order_id: &str) {
        self.with(user_id, |a| {
            a.orders.insert(order_id.to_string());
        });
    }

    pub fn checkout_unknown(&self, user_id: &str) {
        self.with(user_id, |a| a.unknown_checkouts += 1);
    }

    pub fn order_paid(&self, user_id: &str, order_id: &str) {
        self.with(user_id, |a| {
            a.paid.insert(order_id.to_string());
        });
    }

    /// Every account the run touched, by user id.
    pub fn snapshot(&self) -> BTreeMap<String, AccountLedger> {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_one_order() {
        let l = Ledger::default();
        l.registered("u1");
        l.order_placed("u1", "o1");
        l.order_placed("u1", "o1");
        l.order_paid("u1", "o1");
        l.item_added("u1");
        l.item_added("u2");
        let s = l.snapshot();
        assert_eq!(s["u1"].orders.len(), 1);
        assert_eq!(s["u1"].paid.len(), 1);
        assert!(s["u1"].registered);
        assert!(!s["u2"].registered);
        assert_eq!(s["u2"].items_added, 1);
    }
}
