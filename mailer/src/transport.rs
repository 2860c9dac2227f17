//! Where a built message goes: an SMTP server through lettre, or — the
//! embedded default — an `.eml` file per mail in the outbox directory,
//! written atomically (temporary file, then rename) and named by the mail
//! id, so a retry replaces the file instead of adding a second one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::config::TransportConfig;

#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// Builds the SMTP transport for `url`; lettre's per-command timeout is
/// the attempt's timeout too (the sender also bounds the whole attempt).
pub fn smtp_transport(
    url: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|b| b.timeout(Some(timeout)).build())
        .map_err(|e| format!("not a usable SMTP URL: {e}"))
}

impl Transport {
    /// The transport for `config`; creates the outbox directory.
    pub fn new(config: &TransportConfig, timeout: Duration) -> Result<Transport, String> {
        match config {
            TransportConfig::Smtp(url) => smtp_transport(&url.0, timeout).map(Transport::Smtp),
            TransportConfig::Files(dir) => {
                common::private::create_dir(dir).map_err(|e| {
                    format!("cannot create the outbox directory {}: {e}", dir.display())
                })?;
                Ok(Transport::Files(dir.clone()))
            }
        }
    }

    /// A label for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::Files(_) => "file",
        }
    }

    /// Delivers `message` for the mail `id`. The error text is for logs and
    /// the mail's `last_error`; it never contains the body.
    pub async fn send(&self, id: &str, message: &Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp
                .send(message.clone())
                .await
                .map(|_| ())
                .map_err(|e| format!("SMTP: {e}")),
            Transport::Files(dir) => {
                let dir = dir.clone();
                let name = format!("{id}.eml");
                let bytes = message.formatted();
                // File writes block; keep them off the async workers.
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await
                    .map_err(|e| format!("file writer task failed: {e}"))?
                    .map_err(|e| format!("cannot write the .eml file: {e}"))
            }
        }
    }
}

/// Writes `bytes` to `dir/name` so readers see either no file or the whole
/// file: a hidden temporary file in the same directory, synced, then
/// renamed over the target. A mail holds a customer's address and order,
/// so the file stays private (0600, tempfile's own mode) like the rest of
/// the data directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    common::private::create_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_replaces_the_file_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.eml", b"first").unwrap();
        write_atomically(dir.path(), "a.eml", b"second").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["a.eml".to_string()]);
        assert_eq!(std::fs::read(dir.path().join("a.eml")).unwrap(), b"second");
        assert_eq!(
            common::private::mode(&dir.path().join("a.eml")).unwrap(),
            0o600
        );
    }

    #[test]
    fn smtp_urls() {
        assert!(smtp_transport("smtp://127.0.0.1:2525", Duration::from_secs(1)).is_ok());
        assert!(smtp_transport(
            "smtp://u:p@mail.example.com?tls=required",
            Duration::from_secs(1)
        )
        .is_ok());
        assert!(smtp_transport("smtps://mail.example.com", Duration::from_secs(1)).is_ok());
        assert!(smtp_transport("http://mail.example.com", Duration::from_secs(1)).is_err());
        assert!(smtp_transport("not a url", Duration::from_secs(1)).is_err());
    }
}
