//! Parse-don't-validate types for a mail request: a recipient checked by
//! lettre's address parser (the library that later sends it), a subject that
//! cannot inject headers, and a bounded body.

use std::str::FromStr;

use common::messages::SendEmail;
use common::validate::{all, field, FromBody};
use common::ApiError;
use lettre::Address;
use sha2::{Digest, Sha256};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Largest body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 100 * 1024;
/// RFC 5321's limit on a forward path.
const MAX_ADDRESS_BYTES: usize = 254;

/// A single bare address (`ann@example.com`, no display name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient(Address);

impl Recipient {
    pub fn parse(raw: &str) -> Result<Recipient, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > MAX_ADDRESS_BYTES {
            return Err(format!("must be at most {MAX_ADDRESS_BYTES} characters"));
        }
        Address::from_str(trimmed)
            .map(Recipient)
            .map_err(|_| "must be a valid email address".into())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The form the per-recipient limit counts by.
    pub fn lower(&self) -> String {
        self.as_str().to_lowercase()
    }

    pub fn address(&self) -> &Address {
        &self.0
    }
}

/// A subject line: 1–200 characters, no line breaks (a CR or LF would let
/// the caller start a header of their own) and no other control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(raw: &str) -> Result<Subject, String> {
        if raw.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > MAX_SUBJECT_CHARS {
            return Err(format!("must be at most {MAX_SUBJECT_CHARS} characters"));
        }
        if raw.contains(['\r', '\n']) {
            return Err("must not contain line breaks".into());
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Subject(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plain-text body of at most 100 KiB. NUL is refused: no mail system
/// carries it and PostgreSQL cannot store it in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body(String);

impl Body {
    pub fn parse(raw: &str) -> Result<Body, String> {
        if raw.len() > MAX_BODY_BYTES {
            return Err(format!("must be at most {MAX_BODY_BYTES} bytes"));
        }
        if raw.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        Ok(Body(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated mail request.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub to: Recipient,
    pub subject: Subject,
    pub body: Body,
}

impl FromBody for NewMail {
    type Raw = SendEmail;

    fn check(raw: SendEmail) -> Result<NewMail, ApiError> {
        let (to, subject, body) = all((
            field("to", Recipient::parse(&raw.to)),
            field("subject", Subject::parse(&raw.subject)),
            field("body", Body::parse(&raw.body)),
        ))?;
        Ok(NewMail { to, subject, body })
    }
}

impl NewMail {
    /// A digest of the request, stored with its idempotency key so a key
    /// reused for a different mail is told apart from a retry.
    pub fn request_hash(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.to.as_str(), self.subject.as_str(), self.body.as_str()] {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        let r = Recipient::parse(" Ann@Example.com ").unwrap();
        assert_eq!(r.as_str(), "Ann@Example.com");
        assert_eq!(r.lower(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "a b@example.com",
            "Ann <ann@example.com>",
            "ann@example.com, bob@example.com",
            "ann@example.com\r\nBcc: eve@example.com",
            "ann@exa\0mple.com",
        ] {
            assert!(Recipient::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Recipient::parse(&long).is_err());
    }

    #[test]
    fn subjects() {
        assert!(Subject::parse("Grüße aus dem Shop ✓").is_ok());
        assert!(Subject::parse(&"é".repeat(200)).is_ok());
        assert!(Subject::parse(&"é".repeat(201)).is_err());
        assert!(Subject::parse(" ").is_err());
        assert_eq!(
            Subject::parse("Hi\r\nBcc: eve@example.com").unwrap_err(),
            "must not contain line breaks"
        );
        assert!(Subject::parse("Hi\nthere").is_err());
        assert!(Subject::parse("Hi\u{7}").is_err());
    }

    #[test]
    fn bodies() {
        assert!(Body::parse("").is_ok());
        assert!(Body::parse(&"x".repeat(MAX_BODY_BYTES)).is_ok());
        assert!(Body::parse(&"x".repeat(MAX_BODY_BYTES + 1)).is_err());
        assert!(Body::parse("a\0b").is_err());
    }

    #[test]
    fn request_hashes_tell_requests_apart() {
        let mail = |to: &str, s: &str, b: &str| NewMail {
            to: Recipient::parse(to).unwrap(),
            subject: Subject::parse(s).unwrap(),
            body: Body::parse(b).unwrap(),
        };
        let a = mail("a@example.com", "Hi", "x");
        assert_eq!(
            a.request_hash(),
            mail("a@example.com", "Hi", "x").request_hash()
        );
        assert_ne!(
            a.request_hash(),
            mail("a@example.com", "Hi", "y").request_hash()
        );
        assert_ne!(
            a.request_hash(),
            mail("a@example.com", "Hix", "").request_hash()
        );
    }
}
