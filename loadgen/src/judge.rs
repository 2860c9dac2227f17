//! Holding what the shop shows against the generator's ledger: its orders,
//! the mail it sent and the events stats counted. Pure functions, so the
//! rules are tested without a shop; `consistency` fetches and waits.
//!
//! Something missing may still arrive (an outbox delivers with retries), so
//! it is `pending`; something doubled, or that the run never did, is
//! `broken` and waiting will not mend it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::ledger::AccountLedger;

#[derive(Debug, Default, PartialEq)]
pub struct Judgement {
    pub pending: Vec<String>,
    pub broken: Vec<String>,
    /// Worth saying, not a failure (an order a timed-out checkout placed).
    pub notes: Vec<String>,
}

impl Judgement {
    pub fn settled(&self) -> bool {
        self.pending.is_empty() && self.broken.is_empty()
    }
}

/// One order as the shop lists it.
#[derive(Debug, Clone)]
pub struct ShopOrder {
    pub id: String,
    pub status: String,
}

/// Every placed order is in the account's list once, nothing else is
/// (beyond what timed-out checkouts may have placed), and every order the
/// journey paid reads `paid`.
pub fn orders(
    ledger: &BTreeMap<String, AccountLedger>,
    shop: &HashMap<String, Vec<ShopOrder>>,
) -> Judgement {
    let mut j = Judgement::default();
    for (uid, account) in ledger {
        let listed = shop.get(uid).map(Vec::as_slice).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for o in listed {
            if !seen.insert(o.id.as_str()) {
                j.broken
                    .push(format!("order {} is listed twice for user {uid}", o.id));
            }
        }
        for id in &account.orders {
            if !seen.contains(id.as_str()) {
                j.broken.push(format!("order {id} of user {uid} is lost: checkout answered 201, the order list does not have it"));
            }
        }
        let extra: Vec<&str> = seen
            .iter()
            .copied()
            .filter(|id| !account.orders.contains(*id))
            .collect();
        if extra.len() as u64 > account.unknown_checkouts {
            j.broken.push(format!(
                "user {uid} has {} orders the run did not place ({} checkouts unanswered): {}",
                extra.len(),
                account.unknown_checkouts,
                extra.join(", ")
            ));
        } else if !extra.is_empty() {
            j.notes.push(format!(
                "user {uid}: {} orders placed by checkouts whose answer never came",
                extra.len()
            ));
        }
        for id in &account.paid {
            if let Some(o) = listed.iter().find(|o| &o.id == id) {
                if o.status != "paid" {
                    j.pending.push(format!(
                        "order {id} of user {uid} was paid but reads `{}`",
                        o.status
                    ));
                }
            }
        }
    }
    j
}

/// One email as read from the outbox or the mail API.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipients, lowercase.
    pub to: Vec<String>,
    pub subject: String,
    /// The text body where known (the outbox), else empty.
    pub body: String,
}

impl Mail {
    /// Whether this email is about `order_id`: the full id in the text, or
    /// its last block (what the subject shows) in the subject.
    fn mentions(&self, order_id: &str) -> bool {
        let short = order_id.rsplit('-').next().unwrap_or(order_id);
        self.body.contains(order_id)
            || self.subject.contains(order_id)
            || (short.len() >= 8 && self.subject.contains(short))
    }
}

/// Each account registered by the run has one email that is about none of
/// its orders (the welcome), and each order the journey paid has exactly
/// one email about it; no other order has any.
pub fn mail(
    ledger: &BTreeMap<String, AccountLedger>,
    emails: &HashMap<String, String>,
    mails: &[Mail],
) -> Judgement {
    let mut j = Judgement::default();
    let mut by_recipient: HashMap<&str, Vec<&Mail>> = HashMap::new();
    for m in mails {
        for to in &m.to {
            by_recipient.entry(to.as_str()).or_default().push(m);
        }
    }
    for (uid, account) in ledger {
        let Some(email) = emails.get(uid) else {
            continue;
        };
        let inbox = by_recipient
            .get(email.to_lowercase().as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for id in &account.orders {
            let n = inbox.iter().filter(|m| m.mentions(id)).count();
            match (account.paid.contains(id), n) {
                (true, 0) => j.pending.push(format!(
                    "no confirmation email yet for paid order {id} ({email})"
                )),
                (true, 1) | (false, 0) => {}
                (true, n) => j
                    .broken
                    .push(format!("{n} confirmation emails for order {id} ({email})")),
                (false, n) => j.broken.push(format!(
                    "{n} confirmation emails for order {id} ({email}), which the run did not pay"
                )),
            }
        }
        let others = inbox
            .iter()
            .filter(|m| !account.orders.iter().any(|id| m.mentions(id)))
            .count();
        match (account.registered, others) {
            (true, 0) => j.pending.push(format!("no welcome email yet for {email}")),
            (true, 1) | (false, 0) => {}
            (true, n) => j.broken.push(format!(
                "{n} emails to {email} that are about none of its orders (one welcome expected)"
            )),
            (false, n) => j.broken.push(format!(
                "{n} emails to {email} that are about none of its orders"
            )),
        }
    }
    j
}

/// One stats event of a user of the run.
#[derive(Debug, Clone)]
pub struct Event {
    pub user_id: String,
    pub action: String,
    pub order_id: Option<String>,
}

/// One `user_registered` per account the run registered, one
/// `cart_item_added` per item added, one `order_created` per order placed
/// and one `order_paid` per order paid.
pub fn stats(ledger: &BTreeMap<String, AccountLedger>, events: &[Event]) -> Judgement {
    let mut j = Judgement::default();
    let mut count: HashMap<(&str, &str), u64> = HashMap::new();
    let mut per_order: HashMap<(&str, &str), u64> = HashMap::new();
    for e in events {
        *count.entry((&e.user_id, &e.action)).or_default() += 1;
        if let Some(o) = &e.order_id {
            *per_order.entry((o, &e.action)).or_default() += 1;
        }
    }
    for (uid, a) in ledger {
        let n = |action: &str| count.get(&(uid.as_str(), action)).copied().unwrap_or(0);
        compare(
            &mut j,
            format!("user_registered of user {uid}"),
            u64::from(a.registered),
            n("user_registered"),
        );
        compare(
            &mut j,
            format!("cart_item_added of user {uid}"),
            a.items_added,
            n("cart_item_added"),
        );
        for (action, orders) in [("order_created", &a.orders), ("order_paid", &a.paid)] {
            for id in orders {
                let got = per_order.get(&(id.as_str(), action)).copied().unwrap_or(0);
                compare(&mut j, format!("{action} of order {id}"), 1, got);
            }
            let total = n(action);
            if total > orders.len() as u64 + a.unknown_checkouts {
                j.broken.push(format!(
                    "user {uid} has {total} {action} events for {} orders",
                    orders.len()
                ));
            }
        }
    }
    j
}

/// Fewer events than expected may still come; more never go away.
fn compare(j: &mut Judgement, what: String, expected: u64, got: u64) {
    if got < expected {
        j.pending
            .push(format!("{what}: {got} events so far, {expected} expected"));
    } else if got > expected {
        j.broken
            .push(format!("{what}: {got} events, {expected} expected"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> BTreeMap<String, AccountLedger> {
        let mut a = AccountLedger {
            registered: true,
            items_added: 2,
            ..Default::default()
        };
        a.orders.insert("0190-aaaa-bbbbbbbbbbbb".into());
        a.orders.insert("0190-aaaa-cccccccccccc".into());
        a.paid.insert("0190-aaaa-bbbbbbbbbbbb".into());
        BTreeMap::from([("u1".to_string(), a)])
    }

    fn order(id: &str, status: &str) -> ShopOrder {
        ShopOrder {
            id: id.into(),
            status: status.into(),
        }
    }

    #[test]
    fn orders_lost_doubled_and_unpaid() {
        let l = ledger();
        let good = HashMap::from([(
            "u1".to_string(),
            vec![
                order("0190-aaaa-bbbbbbbbbbbb", "paid"),
                order("0190-aaaa-cccccccccccc", "pending_payment"),
            ],
        )]);
        assert!(orders(&l, &good).settled());

        let not_yet = HashMap::from([(
            "u1".to_string(),
            vec![
                order("0190-aaaa-bbbbbbbbbbbb", "pending_payment"),
                order("0190-aaaa-cccccccccccc", "pending_payment"),
            ],
        )]);
        let j = orders(&l, &not_yet);
        assert_eq!((j.pending.len(), j.broken.len()), (1, 0), "{j:?}");

        let lost = HashMap::from([(
            "u1".to_string(),
            vec![order("0190-aaaa-bbbbbbbbbbbb", "paid")],
        )]);
        assert!(orders(&l, &lost).broken[0].contains("lost"));

        let extra = HashMap::from([(
            "u1".to_string(),
            vec![
                order("0190-aaaa-bbbbbbbbbbbb", "paid"),
                order("0190-aaaa-cccccccccccc", "pending_payment"),
                order("0190-aaaa-dddddddddddd", "pending_payment"),
            ],
        )]);
        assert!(orders(&l, &extra).broken[0].contains("did not place"));
        // …unless a checkout went unanswered: then it is a note.
        let mut unsure = l.clone();
        unsure.get_mut("u1").unwrap().unknown_checkouts = 1;
        let j = orders(&unsure, &extra);
        assert!(j.settled() && j.notes.len() == 1, "{j:?}");
    }

    fn mail_to(subject: &str, body: &str) -> Mail {
        Mail {
            to: vec!["ann@example.com".into()],
            subject: subject.into(),
            body: body.into(),
        }
    }

    #[test]
    fn one_welcome_and_one_confirmation_per_paid_order() {
        let l = ledger();
        let emails = HashMap::from([("u1".to_string(), "Ann@example.com".to_string())]);
        let welcome = mail_to("Welcome to the shop", "Hello");
        let confirmation = mail_to("Your order bbbbbbbbbbbb is paid", "");
        let j = mail(&l, &emails, &[welcome.clone(), confirmation.clone()]);
        assert!(j.settled(), "{j:?}");
        // By the full id in the body too.
        let by_body = mail_to("Paid", "Order 0190-aaaa-bbbbbbbbbbbb\n");
        assert!(mail(&l, &emails, &[welcome.clone(), by_body]).settled());

        let j = mail(&l, &emails, std::slice::from_ref(&welcome));
        assert_eq!((j.pending.len(), j.broken.len()), (1, 0), "{j:?}");
        let j = mail(
            &l,
            &emails,
            &[welcome.clone(), confirmation.clone(), confirmation.clone()],
        );
        assert_eq!(j.broken.len(), 1, "{j:?}");
        let j = mail(
            &l,
            &emails,
            &[welcome.clone(), welcome.clone(), confirmation.clone()],
        );
        assert_eq!(j.broken.len(), 1, "{j:?}");
        // A confirmation for the order the run did not pay.
        let unpaid = mail_to("Your order cccccccccccc is paid", "");
        let j = mail(&l, &emails, &[welcome, confirmation, unpaid]);
        assert!(j.broken[0].contains("did not pay"), "{j:?}");
        // Mail to someone else is none of our business.
        let other = Mail {
            to: vec!["bob@example.com".into()],
            ..mail_to("Welcome", "")
        };
        assert_eq!(mail(&l, &emails, &[other]).pending.len(), 2);
    }

    fn event(action: &str, order: Option<&str>) -> Event {
        Event {
            user_id: "u1".into(),
            action: action.into(),
            order_id: order.map(str::to_string),
        }
    }

    #[test]
    fn one_event_per_thing_done() {
        let l = ledger();
        let mut events = vec![
            event("user_registered", None),
            event("cart_item_added", None),
            event("cart_item_added", None),
            event("order_created", Some("0190-aaaa-bbbbbbbbbbbb")),
            event("order_created", Some("0190-aaaa-cccccccccccc")),
            event("order_paid", Some("0190-aaaa-bbbbbbbbbbbb")),
        ];
        assert!(stats(&l, &events).settled(), "{:?}", stats(&l, &events));
        let j = stats(&l, &events[..5]);
        assert_eq!((j.pending.len(), j.broken.len()), (1, 0), "{j:?}");
        events.push(event("order_paid", Some("0190-aaaa-bbbbbbbbbbbb")));
        let j = stats(&l, &events);
        assert!(!j.broken.is_empty(), "{j:?}");
        events.pop();
        events.push(event("order_paid", Some("0190-aaaa-cccccccccccc")));
        assert!(!stats(&l, &events).broken.is_empty());
    }
}
