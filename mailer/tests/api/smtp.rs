//! A real SMTP server on loopback for the tests: mailin's protocol state
//! machine (the one mailin-embedded serves) driven over tokio TCP, so a
//! test can start it on a chosen port, require AUTH PLAIN (over plaintext,
//! as a local relay may), stop it, and read what it received.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{response, Action, AuthMechanism, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA, dot-unstuffed, as lines ending in CRLF.
    pub data: Vec<u8>,
    /// The user that authenticated the session, if any.
    pub user: Option<String>,
}

impl Received {
    /// The message itself. The CRLF that precedes the final `.` belongs to
    /// the DATA terminator (RFC 5321 4.1.1.4), and lettre sends one even
    /// when the message already ends in CRLF, so it is taken off here.
    pub fn message(&self) -> &[u8] {
        self.data.strip_suffix(b"\r\n").unwrap_or(&self.data)
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

#[derive(Clone)]
struct Recorder {
    inbox: Inbox,
    credentials: Option<(String, String)>,
    user: Option<String>,
    current: Received,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.current = Received {
            mail_from: from.to_string(),
            user: self.user.clone(),
            ..Received::default()
        };
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.current.rcpt_to.push(to.to_string());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = std::mem::take(&mut self.current);
        self.inbox.lock().unwrap().push(message);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if u == user && p == password => {
                self.user = Some(user.to_string());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    inbox: Inbox,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// A server on a kernel-chosen port accepting anyone.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_on(0, None).await
    }

    /// A server on `port` (0: any); with `credentials`, AUTH PLAIN with
    /// exactly those is required before MAIL.
    pub async fn start_on(port: u16, credentials: Option<(&str, &str)>) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox: Inbox = Arc::default();
        let mut builder = SessionBuilder::new("smtp.test");
        if credentials.is_some() {
            builder
                .enable_auth(AuthMechanism::Plain)
                .insecure_enable_plaintext_auth();
        }
        let recorder = Recorder {
            inbox: inbox.clone(),
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            user: None,
            current: Received::default(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let builder = builder.clone();
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    let (reader, mut writer) = stream.into_split();
                    let mut reader = BufReader::new(reader);
                    let mut session = builder.build(peer.ip(), recorder);
                    let greeting = session.greeting().buffer().unwrap();
                    if writer.write_all(&greeting).await.is_err() {
                        return;
                    }
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        let read = tokio::time::timeout(
                            Duration::from_secs(30),
                            reader.read_until(b'\n', &mut line),
                        )
                        .await;
                        match read {
                            Ok(Ok(n)) if n > 0 => {}
                            _ => return,
                        }
                        let res = session.process(&line);
                        match res.action {
                            Action::NoReply => continue,
                            Action::Reply => {}
                            Action::Close | Action::UpgradeTls => {
                                let _ = writer.write_all(&res.buffer().unwrap()).await;
                                return;
                            }
                        }
                        if writer.write_all(&res.buffer().unwrap()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpServer { addr, inbox, task }
    }

    /// `smtp://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
