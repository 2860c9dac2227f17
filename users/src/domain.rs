//! Parse-don't-validate types for what users send us.

use common::auth::Role;
use common::validate::{all, field, FromBody};
use common::ApiError;
use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Control (Cc) and format (Cf) characters: invisible, or reordering what
/// follows (bidi overrides, zero-width spaces and joiners, soft hyphens).
/// Text shown to people or put into emails never needs them.
fn has_control_or_format(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(
            c.general_category(),
            GeneralCategory::Control | GeneralCategory::Format
        )
    })
}

/// An email address checked by a real parser — lettre's, the same one the
/// mailer uses, so every address we accept is one the mailer can send to —
/// kept as typed; uniqueness uses its lower-case form.
///
/// Only addresses already in NFKC form are accepted: a compatibility
/// character (the Kelvin sign `\u{212A}`, full-width letters, ligatures)
/// looks like — and lower-cases into — a plain letter, so `\u{212A}ate@…`
/// would be one account with `kate@…`. Refusing them, the lower-case
/// comparison never maps two visibly different addresses to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        if has_control_or_format(trimmed) {
            return Err("must not contain control or invisible formatting characters".into());
        }
        if !unicode_normalization::is_nfkc(trimmed) {
            return Err(
                "must not contain look-alike compatibility characters (such as the Kelvin sign, full-width letters or ligatures); type the plain letters".into(),
            );
        }
        // A shop mails its customers, so the domain must be a public-looking
        // one: `ann@localhost` parses but cannot be delivered to.
        let dotted_domain = trimmed
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.contains('.'));
        if trimmed.parse::<lettre::Address>().is_err() || !dotted_domain {
            return Err("must be a valid email address".into());
        }
        Ok(Email(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn lower(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A password of 8 to 1024 characters; the upper bound keeps hashing cheap
/// enough that a huge password cannot be used to burn CPU.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Password, String> {
        let n = raw.chars().count();
        if n < 8 {
            return Err("must be at least 8 characters".into());
        }
        if n > 1024 {
            return Err("must be at most 1024 characters".into());
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: 1 to 100 characters after trimming, no control or
/// format characters (it is greeted by name in emails, where a bidi
/// override or a zero-width space would disguise the text around it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Name, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.chars().count() > 100 {
            return Err("must be at most 100 characters".into());
        }
        if has_control_or_format(trimmed) {
            return Err(
                "must not contain control or invisible formatting characters (such as bidirectional overrides or zero-width spaces)".into(),
            );
        }
        Ok(Name(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `POST /user/` body as sent.
#[derive(Deserialize)]
pub struct Registration {
    email: String,
    password: String,
    name: String,
}

/// A checked registration.
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: Name,
}

impl FromBody for NewAccount {
    type Raw = Registration;

    fn check(raw: Registration) -> Result<NewAccount, ApiError> {
        let (email, password, name) = all((
            field("email", Email::parse(&raw.email)),
            field("password", Password::parse(&raw.password)),
            field("name", Name::parse(&raw.name)),
        ))?;
        Ok(NewAccount {
            email,
            password,
            name,
        })
    }
}

/// The `PUT /user/{id}` body as sent: every field optional.
#[derive(Deserialize)]
pub struct Update {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
    current_password: Option<String>,
}

/// A checked partial update: `None` leaves the field as it is.
pub struct AccountChanges {
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub name: Option<Name>,
    /// Required when users change their own email or password.
    pub current_password: Option<String>,
}

impl FromBody for AccountChanges {
    type Raw = Update;

    fn check(raw: Update) -> Result<AccountChanges, ApiError> {
        let (email, password, name) = all((
            field("email", raw.email.as_deref().map(Email::parse).transpose()),
            field(
                "password",
                raw.password.as_deref().map(Password::parse).transpose(),
            ),
            field("name", raw.name.as_deref().map(Name::parse).transpose()),
        ))?;
        Ok(AccountChanges {
            email,
            password,
            name,
            current_password: raw.current_password,
        })
    }
}

/// A stored account, as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

/// User ids are UUIDs; anything else cannot exist (`404`, not `500`).
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.com ").unwrap().lower(),
            "ann@example.com"
        );
        for bad in ["", "ann", "ann@", "@x.com", "a b@x.com", "ann@localhost"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn look_alike_and_invisible_characters_are_refused_in_emails() {
        for bad in [
            "\u{212A}ate@example.com",  // Kelvin sign
            "\u{FF4B}ate@example.com",  // full-width k
            "\u{FB01}nn@example.com",   // fi ligature
            "ka\u{200B}te@example.com", // zero-width space
            "kate@exam\u{202E}ple.com", // right-to-left override
            "kate\u{0}@example.com",    // NUL
            "cafe\u{0301}@example.com", // decomposed é (NFC composes it)
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        // Non-ASCII letters in their plain form are fine.
        assert_eq!(
            Email::parse("JOSÉ@Example.com").unwrap().lower(),
            "josé@example.com"
        );
    }

    #[test]
    fn control_and_format_characters_are_refused_in_names() {
        for bad in ["Ann\u{202E}gnp.exe", "A\u{200B}nn", "Ann\u{AD}", "A\u{7}"] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Name::parse("Zoë Ünal-Ødegård").is_ok());
    }

    #[test]
    fn passwords_and_names() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pass").unwrap()),
            "Password(***)"
        );
        assert!(Name::parse("  ").is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert_eq!(Name::parse(" Ann ").unwrap().as_str(), "Ann");
    }
}
