//! `POST /send_email/` to the mailer: one plain-text mail to one address.

use serde::{Deserialize, Serialize};

use super::{target, Message};

/// The mailer's request body. The mailer checks each field (recipient,
/// subject, size) when it reads one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Message for SendEmail {
    const TARGET: &'static str = target::MAILER;
    const PATH: &'static str = "/send_email/";
}
