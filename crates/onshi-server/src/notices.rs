//! The notices worker (the notice: 医療機関等向けポータルサイトからのメールで通知). It plans into the
//! outbox every mail `onshi_core::notice::due` says a site is due — each (campaign, site, kind,
//! key) at most once, enforced by the table's unique key — and delivers the outbox by SMTP, or,
//! with no SMTP server configured, as `.eml` files in `DATA/outbox/`. A failed delivery is
//! retried with back-off; a mail is marked sent only after the SMTP server accepted it.
//!
//! Times are the server clock's, so a simulated campaign sends its morning mails in its mornings.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Timestamp};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use onshi_store::{Mail, OperatorMail};

use tracing::Instrument;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub mod plan;
pub mod relay;

use plan::{PAGES_PER_TICK, Round};
pub use relay::{Relay, RelayError};

/// How the outbox is delivered.
#[derive(Debug, Clone)]
pub enum Transport {
    /// An SMTP relay ([`Relay`]: TLS and credentials as its URL and options say).
    Smtp(Relay),
    /// `.eml` files in a directory.
    Files(PathBuf),
}

/// The sender of every notice.
pub const DEFAULT_FROM: &str = "オンライン資格確認 更新配信 <noreply@onshi.invalid>";

/// How often the worker wakes (real time).
const TICK: Duration = Duration::from_millis(100);
/// How often, in server time, the worker looks for notices due.
const PLAN_EVERY: SignedDuration = SignedDuration::from_mins(5);
/// How long a claimed mail is held by the worker that claimed it, in server time...
const CLAIM: Duration = Duration::from_secs(10 * 60);
/// ...and at least in real time (a fast simulated clock would otherwise let another replica
/// claim a mail that is still being sent).
const CLAIM_MIN_REAL: Duration = Duration::from_secs(60);
/// Mails claimed per tick.
const BATCH: u32 = 50;
/// Mails being sent at once, each over a connection of its own.
const IN_FLIGHT: usize = 8;
/// The longest one mail's delivery may take, connection to "accepted" (lettre's own timeout
/// covers only the connection). A relay that takes longer counts as a failed attempt.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Kept free at the end of a claim, for marking the last mails sent.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// The back-off after `attempts` failed deliveries: 1, 2, 4 … minutes, at most an hour.
pub fn backoff(attempts: u32) -> SignedDuration {
    let minutes = 1i64 << attempts.min(6);
    SignedDuration::from_mins(minutes.min(60))
}

/// The most attempts a mail gets: with [`backoff`], about a day of retries (a relay down
/// overnight), after which the mail is given up instead of retried hourly for ever.
pub const MAX_ATTEMPTS: u32 = 24;

/// Why a send failed, and whether trying again could help.
#[derive(Debug)]
struct SendFailure {
    why: String,
    /// The relay refused the mail for good (an SMTP 5xx answer), or the mail cannot be made
    /// (an address that does not parse): another attempt would fail the same way.
    permanent: bool,
}

/// Whether the relay refused this mail itself for good: a permanent answer of the mail-system
/// kind (55x: no such mailbox, not allowed, …). A permanent refusal of the session — a wrong
/// password (535), TLS or authentication required (530) — is the relay's configuration, which
/// the operator fixes: those mails are retried, not given up.
fn refused_for_good(e: &lettre::transport::smtp::Error) -> bool {
    use lettre::transport::smtp::response::Category;
    e.is_permanent()
        && e.status()
            .is_some_and(|code| code.category == Category::MailSystem)
}

impl SendFailure {
    fn transient(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            permanent: false,
        }
    }
}

/// After a failed delivery that was attempt number `attempts`: when to try again, or `None`
/// to give the mail up (a permanent failure, or the last of [`MAX_ATTEMPTS`]).
pub fn next_attempt(failed: Timestamp, attempts: u32, permanent: bool) -> Option<Timestamp> {
    if permanent || attempts >= MAX_ATTEMPTS {
        return None;
    }
    Some(
        failed
            .checked_add(backoff(attempts.saturating_sub(1)))
            .unwrap_or(failed),
    )
}

/// Starts the worker; refuses a relay it could not send through ([`Relay::transport`]).
pub fn spawn(state: AppState, transport: Transport, from: Mailbox) -> Result<(), RelayError> {
    let outlet = match transport {
        Transport::Smtp(relay) => Outlet::Smtp {
            relay: relay.host_port(),
            transport: relay.transport()?,
        },
        Transport::Files(dir) => Outlet::Files(dir),
    };
    // Delivery runs on its own task: a slow relay never holds up planning (a page a tick), and
    // planning never holds up delivery.
    let postman = Postman {
        state: state.clone(),
        sender: Sender { outlet, from },
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = postman.deliver().await {
                tracing::error!(error = %e.message, "delivering notices failed");
            }
        }
    });
    tokio::spawn(async move {
        let mut worker = Worker {
            state,
            round: None,
            last_plan: None,
        };
        let mut tick = tokio::time::interval(plan::PLAN_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let nudge = worker.state.notices_nudge.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // The clock was set or a campaign activated: a new round from the first site as
                // soon as the one under way (if any) ends. A round is never abandoned, so a
                // closed `notices_plan` span is always a round that planned every site.
                () = nudge.notified() => worker.last_plan = None,
            }
            worker.tick().await;
        }
    });
    Ok(())
}

/// Delivers the outbox.
struct Postman {
    state: AppState,
    sender: Sender,
}

/// Plans the outbox.
struct Worker {
    state: AppState,
    /// The planning round under way, a page a tick.
    round: Option<Round>,
    /// When the last round started (server time).
    last_plan: Option<Timestamp>,
}

impl Worker {
    async fn tick(&mut self) {
        let now = self.state.now();
        let due = self.round.is_none()
            && self
                .last_plan
                .is_none_or(|last| now < last || now.duration_since(last) >= PLAN_EVERY);
        if due {
            match Round::start(&self.state, now).await {
                Ok(round) => self.round = Some(round),
                Err(e) => tracing::error!(error = %e.message, "planning notices failed"),
            }
            self.last_plan = Some(now);
        }
        if let Some(round) = &mut self.round {
            match round.step(&self.state, PAGES_PER_TICK).await {
                Ok(false) => {}
                Ok(true) => self.round = None,
                Err(e) => {
                    // The next round starts from the first site; the outbox keeps what this
                    // one planned, once.
                    tracing::error!(error = %e.message, "planning notices failed");
                    self.round = None;
                }
            }
        }
    }
}

impl Postman {
    /// Claims a batch of due mails and sends them, [`IN_FLIGHT`] at a time, each within
    /// [`SEND_TIMEOUT`]. A claim lasts [`CLAIM`] (at least [`CLAIM_MIN_REAL`] of real time); no
    /// send starts unless it can end, and be marked, before the claim runs out, so another
    /// replica never claims a mail this one is still sending. Mails left over wait for their
    /// claim to lapse: a delay, never a loss.
    async fn deliver(&self) -> ApiResult<()> {
        let hold = self.state.clock.span_at_least_real(CLAIM, CLAIM_MIN_REAL);
        // The claim's clock and the real clock, read together just before claiming.
        let now = self.state.now();
        let claimed = std::time::Instant::now();
        let until = now.checked_add(hold).unwrap_or(Timestamp::MAX);
        let last_start = self
            .state
            .clock
            .real_duration(hold)
            .saturating_sub(SEND_TIMEOUT + CLAIM_MARGIN);
        // The sites' outbox and the operator's (a gate held a campaign), claimed alike.
        let mails: Vec<Outgoing> = self
            .state
            .db(move |s| {
                let sites = s.claim_mails(now, until, BATCH)?;
                let operator = s.claim_operator_mails(now, until, BATCH)?;
                Ok(sites
                    .into_iter()
                    .map(Outgoing::Site)
                    .chain(operator.into_iter().map(Outgoing::Operator))
                    .collect())
            })
            .await?;
        let total = mails.len();
        let mut sending = tokio::task::JoinSet::new();
        // Every started send is awaited to its end, whatever else fails: a send cut off after
        // the relay accepted a mail would leave it unmarked, to be sent again.
        let mut first_error = None;
        for (started, mail) in mails.into_iter().enumerate() {
            while sending.len() >= IN_FLIGHT {
                if let Some(done) = sending.join_next().await {
                    keep_first(&mut first_error, settled(done));
                }
            }
            if claimed.elapsed() > last_start {
                tracing::warn!(
                    left = total - started,
                    "the claim is running out; the rest of the batch waits for it to lapse"
                );
                break;
            }
            let span = tracing::info_span!("notice_send", id = mail.id(), kind = mail.kind(), institution = %mail.addressee());
            let (state, sender) = (self.state.clone(), self.sender.clone());
            sending.spawn(async move { sender.deliver(&state, &mail, now).await }.instrument(span));
        }
        while let Some(done) = sending.join_next().await {
            keep_first(&mut first_error, settled(done));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The result of one mail's delivery task.
fn settled(done: Result<ApiResult<()>, tokio::task::JoinError>) -> ApiResult<()> {
    done.map_err(|e| ApiError::internal(format!("a notice send task failed: {e}")))?
}

/// Keeps the first error of several.
fn keep_first(first: &mut Option<ApiError>, result: ApiResult<()>) {
    if let Err(e) = result {
        first.get_or_insert(e);
    }
}

/// A claimed mail: to a site (the notices outbox) or to the operator (a gate's hold).
enum Outgoing {
    Site(Mail),
    Operator(OperatorMail),
}

impl Outgoing {
    fn id(&self) -> i64 {
        match self {
            Self::Site(m) => m.id,
            Self::Operator(m) => m.id,
        }
    }

    /// The notice kind's slug, or `operator` for the operator's mail.
    fn kind(&self) -> &'static str {
        match self {
            Self::Site(m) => m.kind.slug(),
            Self::Operator(_) => "operator",
        }
    }

    /// The site's code, or the campaign for the operator's mail.
    fn addressee(&self) -> String {
        match self {
            Self::Site(m) => m.institution.to_string(),
            Self::Operator(m) => m.campaign.clone(),
        }
    }

    fn recipient(&self) -> &str {
        match self {
            Self::Site(m) => &m.recipient,
            Self::Operator(m) => &m.recipient,
        }
    }

    fn subject(&self) -> &str {
        match self {
            Self::Site(m) => &m.subject,
            Self::Operator(m) => &m.subject,
        }
    }

    fn body(&self) -> &str {
        match self {
            Self::Site(m) => &m.body,
            Self::Operator(m) => &m.body,
        }
    }

    fn attempts(&self) -> u32 {
        match self {
            Self::Site(m) => m.attempts,
            Self::Operator(m) => m.attempts,
        }
    }

    /// Derived from the row, so a mail re-sent after a crash is recognisably the same.
    fn message_id(&self) -> String {
        match self {
            Self::Site(m) => format!(
                "<notice-{}-{}-{}@onshi.invalid>",
                m.id,
                m.kind.slug(),
                m.institution
            ),
            Self::Operator(m) => format!("<operator-{}@onshi.invalid>", m.id),
        }
    }

    fn file_name(&self) -> String {
        format!("{:08}-{}-{}.eml", self.id(), self.kind(), self.addressee())
    }
}

/// Where mails go.
#[derive(Clone)]
enum Outlet {
    /// An SMTP relay, a connection per mail (a send cut off by its timeout takes its own
    /// connection with it; a pool would hand the half-finished one to the next mail).
    Smtp {
        relay: String,
        transport: AsyncSmtpTransport<Tokio1Executor>,
    },
    /// `.eml` files in a directory.
    Files(PathBuf),
}

/// Sends one mail and records the outcome in the outbox.
#[derive(Clone)]
struct Sender {
    outlet: Outlet,
    from: Mailbox,
}

impl Sender {
    /// Sends `mail` (claimed at `claimed`) and marks it sent, or failed with its back-off.
    async fn deliver(
        &self,
        state: &AppState,
        mail: &Outgoing,
        claimed: Timestamp,
    ) -> ApiResult<()> {
        let id = mail.id();
        let operator = matches!(mail, Outgoing::Operator(_));
        let sign_in = sign_in_section(state, mail).await;
        let sent = tokio::time::timeout(SEND_TIMEOUT, self.send(mail, claimed, sign_in.as_deref()))
            .await
            .unwrap_or_else(|_| {
                Err(SendFailure::transient(format!(
                    "no answer within {SEND_TIMEOUT:?}"
                )))
            });
        match sent {
            Ok(()) => {
                tracing::info!(to = %mail.recipient(), "notice sent");
                state.metrics.mail_sent();
                let at = state.now();
                state
                    .db(move |s| {
                        if operator {
                            s.operator_mail_sent(id, at)
                        } else {
                            s.mail_sent(id, at)
                        }
                    })
                    .await
            }
            Err(SendFailure { why, permanent }) => {
                let failed = state.now();
                let attempts = mail.attempts().saturating_add(1);
                state.metrics.mail_failed();
                match next_attempt(failed, attempts, permanent) {
                    Some(retry) => {
                        tracing::warn!(error = %why, attempts, retry_at = %retry, "notice not sent; will retry");
                        state
                            .db(move |s| {
                                if operator {
                                    s.operator_mail_failed(id, &why, retry)
                                } else {
                                    s.mail_failed(id, &why, retry)
                                }
                            })
                            .await
                    }
                    None => {
                        tracing::error!(error = %why, attempts, permanent, to = %mail.recipient(), "notice given up: it will not be tried again");
                        state
                            .db(move |s| {
                                if operator {
                                    s.operator_mail_given_up(id, &why, failed)
                                } else {
                                    s.mail_given_up(id, &why, failed)
                                }
                            })
                            .await
                    }
                }
            }
        }
    }

    async fn send(
        &self,
        mail: &Outgoing,
        now: Timestamp,
        sign_in: Option<&str>,
    ) -> Result<(), SendFailure> {
        let message = message(&self.from, mail, now, sign_in).map_err(|why| SendFailure {
            why,
            permanent: true,
        })?;
        match &self.outlet {
            Outlet::Smtp { relay, transport } => {
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendFailure {
                        why: format!("SMTP {relay}: {e}"),
                        permanent: refused_for_good(&e),
                    })
            }
            Outlet::Files(dir) => {
                let name = mail.file_name();
                let (dir, bytes) = (dir.clone(), message.formatted());
                tokio::task::spawn_blocking(move || write_eml(&dir, &name, &bytes))
                    .await
                    .map_err(|e| SendFailure::transient(e.to_string()))?
                    .map_err(SendFailure::transient)
            }
        }
    }
}

/// An announcement's one-time sign-in link, made now (each send makes its own; only its hash
/// is stored, never the outbox body with the token): the section that ends the mail. Without
/// it (the store failed) the mail still goes out; the site signs in with its access key.
async fn sign_in_section(state: &AppState, mail: &Outgoing) -> Option<String> {
    let Outgoing::Site(m) = mail else { return None };
    if m.kind != onshi_core::notice::NoticeKind::Announcement {
        return None;
    }
    match crate::services::sign_in::create_link(state, m.institution).await {
        Ok((token, until)) => {
            let url = format!("{}/site/sign-in?token={token}", state.public_url);
            Some(onshi_core::notice::sign_in_text(
                onshi_core::lang::Lang::Ja,
                &url,
                until,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e.message, institution = %m.institution, "no sign-in link in the announcement");
            None
        }
    }
}

/// The RFC 5322 message of an outbox mail (with the sign-in section appended, if any). The
/// Message-ID is derived from the outbox row, so a mail re-sent after a crash between
/// "accepted" and "marked sent" is recognisably the same.
fn message(
    from: &Mailbox,
    mail: &Outgoing,
    now: Timestamp,
    sign_in: Option<&str>,
) -> Result<Message, String> {
    let to: Mailbox = mail
        .recipient()
        .parse()
        .map_err(|e| format!("recipient {:?}: {e}", mail.recipient()))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject().to_owned())
        .date(SystemTime::from(now))
        .message_id(Some(mail.message_id()))
        .header(ContentType::TEXT_PLAIN)
        .body(match sign_in {
            Some(section) => format!("{}\n{section}", mail.body()),
            None => mail.body().to_owned(),
        })
        .map_err(|e| e.to_string())
}

fn write_eml(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_is_given_up_on_a_permanent_refusal_or_after_its_last_attempt() {
        let failed: Timestamp = "2026-01-19T01:00:00Z".parse().expect("instant");
        assert_eq!(
            next_attempt(failed, 1, false),
            Some("2026-01-19T01:01:00Z".parse().expect("instant"))
        );
        assert_eq!(
            next_attempt(failed, 3, false),
            Some("2026-01-19T01:04:00Z".parse().expect("instant"))
        );
        assert!(next_attempt(failed, MAX_ATTEMPTS - 1, false).is_some());
        assert_eq!(next_attempt(failed, MAX_ATTEMPTS, false), None);
        assert_eq!(next_attempt(failed, 1, true), None);
        // About a day of retries before the last.
        let mut at = failed;
        for attempts in 1..MAX_ATTEMPTS {
            at = next_attempt(at, attempts, false).expect("retried");
        }
        let hours = at.duration_since(failed).as_hours();
        assert!((18..=30).contains(&hours), "{hours} h of retries");
    }

    #[test]
    fn back_off_doubles_to_an_hour() {
        assert_eq!(backoff(0), SignedDuration::from_mins(1));
        assert_eq!(backoff(1), SignedDuration::from_mins(2));
        assert_eq!(backoff(5), SignedDuration::from_mins(32));
        assert_eq!(backoff(6), SignedDuration::from_mins(60));
        assert_eq!(backoff(30), SignedDuration::from_mins(60));
    }
}
