//! The reception desk (受付): one patient's check-in on a terminal and a face-authentication
//! card reader, and exactly what goes wrong when the terminal was not restarted after the update
//! (the notice's ① and ②).
//!
//! Why it fails: after the update is installed, the components on disk are the new version but
//! the terminal application still running is the old one. Everything up to the end of the
//! consent selection (同意選択) runs inside the old application; the first call that loads a
//! new component — submitting the consent and querying the qualification — fails. The terminal
//! shows an error dialog (①); OK opens a second one; OK on that sends the reader to error 901
//! (②). The qualification is not confirmed. After a restart the same patient succeeds.
//!
//! Every screen text carries its [`Source`]: quoted from the notice, or assumed (the notice shows
//! the screen only as a picture, describes it in words, or not at all). Whatever shows a screen
//! shows an assumed text with [`Source::MARK_JA`] beside it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::vendor::Vendor;
use crate::version::Version;

mod gloss;
mod profiles;
mod source;
#[cfg(test)]
mod tests;

pub use gloss::{gloss_en, glossed};
pub use profiles::{CONSENT_ITEMS, TERMINAL_DIALOG_SOURCE, TERMINAL_ERROR, VendorProfile, profile};
pub use source::Source;

/// The terminal application's state, as the notice distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TerminalState {
    /// The running application is the installed one.
    UpToDate,
    /// A newer version is installed beside the running one: restart required (再起動が必要).
    PendingRestart,
}

/// Why a string is not a terminal state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown terminal state {0:?}: expected up-to-date or pending-restart")]
pub struct UnknownTerminalState(pub String);

impl TerminalState {
    /// The state of a terminal that started `running` and has `installed` on disk.
    pub fn from_versions(running: &Version, installed: &Version) -> Self {
        if installed > running {
            Self::PendingRestart
        } else {
            Self::UpToDate
        }
    }

    /// `up-to-date` or `pending-restart`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::UpToDate => "up-to-date",
            Self::PendingRestart => "pending-restart",
        }
    }

    /// The state in Japanese for staff.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::UpToDate => "最新（再起動済み）",
            Self::PendingRestart => "更新インストール済み・再起動前",
        }
    }
}

impl FromStr for TerminalState {
    type Err = UnknownTerminalState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up-to-date" => Ok(Self::UpToDate),
            "pending-restart" => Ok(Self::PendingRestart),
            _ => Err(UnknownTerminalState(s.to_owned())),
        }
    }
}

impl fmt::Display for TerminalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// What happens at the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceptionEvent {
    /// The patient puts the My Number card on the reader.
    CardInserted,
    /// Face authentication succeeded.
    FaceVerified,
    /// PIN entry instead of the face (暗証番号).
    PinVerified,
    /// The patient finished the consent selection (同意選択) — ① when a restart is pending.
    ConsentCompleted,
    /// Staff press OK on the terminal's error dialog — ② on the second press.
    OkPressed,
    /// The patient takes the card out.
    CardRemoved,
    /// Staff restart the terminal; it comes back running the installed version.
    TerminalRestarted,
}

impl ReceptionEvent {
    /// The machine name (`card_inserted`, …).
    pub fn slug(self) -> &'static str {
        match self {
            Self::CardInserted => "card_inserted",
            Self::FaceVerified => "face_verified",
            Self::PinVerified => "pin_verified",
            Self::ConsentCompleted => "consent_completed",
            Self::OkPressed => "ok_pressed",
            Self::CardRemoved => "card_removed",
            Self::TerminalRestarted => "terminal_restarted",
        }
    }

    /// The event in Japanese for the trace.
    pub fn label_ja(self) -> &'static str {
        match self {
            Self::CardInserted => "患者がマイナンバーカードを置く",
            Self::FaceVerified => "顔認証で本人確認",
            Self::PinVerified => "暗証番号で本人確認",
            Self::ConsentCompleted => "同意選択を終了",
            Self::OkPressed => "職員がエラーダイアログの「OK」を押す",
            Self::CardRemoved => "患者がカードを取り出す",
            Self::TerminalRestarted => "職員が資格確認端末を再起動",
        }
    }
}

impl FromStr for ReceptionEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::CardInserted,
            Self::FaceVerified,
            Self::PinVerified,
            Self::ConsentCompleted,
            Self::OkPressed,
            Self::CardRemoved,
            Self::TerminalRestarted,
        ]
        .into_iter()
        .find(|e| e.slug() == s)
        .ok_or_else(|| format!("unknown reception event {s:?}"))
    }
}

/// The terminal's screen: no dialog, or the N-th error dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalScreen {
    /// `null` or `"error"`.
    pub dialog: Option<&'static str>,
    /// 1 for the dialog at consent completion, 2 for the one the first OK opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u8>,
    /// What the dialog says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'static str>,
    /// Where the dialog's wording comes from (always assumed: the notice has pictures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// The card reader's screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReaderScreen {
    /// A stable id: `initial`, `face_auth`, `consent`, `result`, `completion_frozen`,
    /// `please_wait`, `consent_loading`, `error_901`, `no_qualification`, `certificate_expired`.
    pub screen: &'static str,
    /// Whether the screen no longer reacts (the patient cannot continue).
    pub stuck: bool,
    /// `"901"` on the 901 screen.
    pub code: Option<&'static str>,
    /// The Japanese text shown, line by line (`\n`), exactly as the notice writes it when quoted.
    /// A 901 screen's code is in this text; nothing shows it a second time.
    pub text: String,
    /// Where the text's wording comes from.
    pub source: Source,
    /// At ①, the notice's own words for what this vendor's reader does (quoted behaviour, even
    /// when the wording on the screen is assumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<&'static str>,
}

/// The outcome of the central qualification query, as the mock service (or a real one) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryOutcome {
    /// The patient's insurance is confirmed.
    Confirmed,
    /// The card's holder has no qualification on record.
    NoQualification,
    /// The card's electronic certificate has expired.
    CertificateExpired,
}

/// Where the check-in stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    FaceAuth,
    Consent,
    /// ①: error dialog 1 is open.
    ErrorDialog1,
    /// The second dialog is open.
    ErrorDialog2,
    /// ②: the reader shows 901.
    Error901,
    Done,
}

/// Why an event cannot happen now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event} cannot happen now: {why}")]
pub struct ReceptionError {
    pub event: &'static str,
    pub why: &'static str,
}

/// One patient's check-in on one terminal and reader.
#[derive(Debug, Clone)]
pub struct Reception {
    vendor: Vendor,
    terminal: TerminalState,
    stage: Stage,
    card_present: bool,
    confirmed: bool,
    failed: bool,
    outcome: Option<QueryOutcome>,
}

impl Reception {
    /// A desk with `vendor`'s reader on a terminal in `terminal` state, waiting for a patient.
    pub fn new(vendor: Vendor, terminal: TerminalState) -> Self {
        Self {
            vendor,
            terminal,
            stage: Stage::Idle,
            card_present: false,
            confirmed: false,
            failed: false,
            outcome: None,
        }
    }

    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    pub fn terminal_state(&self) -> TerminalState {
        self.terminal
    }

    /// Whether this attempt confirmed the patient's qualification.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// Whether this attempt failed (error dialog, 901, or a refused card).
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether this attempt has ended: confirmed, refused by the central service, or on 901.
    pub fn attempt_over(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::Error901)
    }

    /// Whether the reader shows error 901.
    pub fn shows_901(&self) -> bool {
        self.stage == Stage::Error901
    }

    /// The events that make sense now (for the page's buttons).
    pub fn possible(&self) -> Vec<ReceptionEvent> {
        use ReceptionEvent as E;
        let mut v = match self.stage {
            Stage::Idle | Stage::Done if !self.card_present => vec![E::CardInserted],
            Stage::FaceAuth => vec![E::FaceVerified, E::PinVerified],
            Stage::Consent => vec![E::ConsentCompleted],
            Stage::ErrorDialog1 | Stage::ErrorDialog2 => vec![E::OkPressed],
            _ => vec![],
        };
        if self.card_present {
            v.push(E::CardRemoved);
        }
        v.push(E::TerminalRestarted);
        v
    }

    /// Applies an event. `query` answers the qualification query when the consent completes on
    /// a terminal that can load its components (the mock service, or a fixed answer).
    pub fn apply(
        &mut self,
        event: ReceptionEvent,
        query: impl FnOnce() -> QueryOutcome,
    ) -> Result<(), ReceptionError> {
        use ReceptionEvent as E;
        let refuse = |why| ReceptionError {
            event: event.slug(),
            why,
        };
        match (event, self.stage) {
            (E::TerminalRestarted, _) => {
                // The restarted application runs the installed version; the reader resets.
                self.terminal = TerminalState::UpToDate;
                self.stage = if self.card_present {
                    Stage::FaceAuth
                } else {
                    Stage::Idle
                };
            }
            (E::CardInserted, _) if self.card_present => {
                return Err(refuse("a card is already on the reader"));
            }
            (E::CardInserted, Stage::Idle | Stage::Done) => {
                *self = Self::new(self.vendor, self.terminal);
                self.card_present = true;
                self.stage = Stage::FaceAuth;
            }
            (E::CardInserted, _) => {
                return Err(refuse("the reader is not on its first screen"));
            }
            (E::FaceVerified | E::PinVerified, Stage::FaceAuth) => self.stage = Stage::Consent,
            (E::ConsentCompleted, Stage::Consent) => match self.terminal {
                TerminalState::PendingRestart => {
                    // ①: loading the new component from the old application fails.
                    self.stage = Stage::ErrorDialog1;
                    self.failed = true;
                }
                TerminalState::UpToDate => {
                    let outcome = query();
                    self.confirmed = outcome == QueryOutcome::Confirmed;
                    self.failed = !self.confirmed;
                    self.outcome = Some(outcome);
                    self.stage = Stage::Done;
                }
            },
            (E::OkPressed, Stage::ErrorDialog1) => self.stage = Stage::ErrorDialog2,
            (E::OkPressed, Stage::ErrorDialog2) => self.stage = Stage::Error901,
            (E::CardRemoved, _) if !self.card_present => {
                return Err(refuse("there is no card on the reader"));
            }
            (E::CardRemoved, Stage::FaceAuth | Stage::Consent) => {
                // The patient gave up before finishing: back to the first screen.
                self.card_present = false;
                self.stage = Stage::Idle;
            }
            (E::CardRemoved, _) => {
                // The screen stays as it is (a stuck reader does not notice; a finished one
                // keeps its result until the next patient).
                self.card_present = false;
            }
            _ => return Err(refuse("that step does not follow the current screen")),
        }
        Ok(())
    }

    /// What the terminal shows now.
    pub fn terminal_screen(&self) -> TerminalScreen {
        let dialog = |count| TerminalScreen {
            dialog: Some("error"),
            count: Some(count),
            text: Some(TERMINAL_ERROR),
            source: Some(TERMINAL_DIALOG_SOURCE),
        };
        match self.stage {
            Stage::ErrorDialog1 => dialog(1),
            Stage::ErrorDialog2 => dialog(2),
            _ => TerminalScreen {
                dialog: None,
                count: None,
                text: None,
                source: None,
            },
        }
    }

    /// What the reader shows now.
    pub fn reader_screen(&self) -> ReaderScreen {
        let p = profile(self.vendor);
        match self.stage {
            Stage::Idle => p.initial(),
            Stage::FaceAuth => p.face_auth(),
            Stage::Consent => p.consent(),
            Stage::ErrorDialog1 | Stage::ErrorDialog2 => p.after_consent_error(),
            Stage::Error901 => p.error_901(),
            Stage::Done => match &self.outcome {
                Some(QueryOutcome::NoQualification) => p.no_qualification(),
                Some(QueryOutcome::CertificateExpired) => p.certificate_expired(),
                _ => p.result(),
            },
        }
    }
}

/// One step of a trace: the event and both screens after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub event: ReceptionEvent,
    pub terminal: TerminalScreen,
    pub reader: ReaderScreen,
}

/// A whole check-in as `onshi reception` prints it (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub vendor: Vendor,
    pub terminal: TerminalState,
    pub confirmed: bool,
    pub steps: Vec<Step>,
}

/// Runs one patient through the desk: card, face, consent, and then either the result
/// (up to date) or ① and ② (restart pending), then the card comes out.
pub fn run_patient(vendor: Vendor, terminal: TerminalState) -> Trace {
    use ReceptionEvent as E;
    let mut desk = Reception::new(vendor, terminal);
    let mut script = vec![E::CardInserted, E::FaceVerified, E::ConsentCompleted];
    if terminal == TerminalState::PendingRestart {
        script.extend([E::OkPressed, E::OkPressed]);
    }
    script.push(E::CardRemoved);
    let mut steps = Vec::new();
    for event in script {
        if desk.apply(event, || QueryOutcome::Confirmed).is_ok() {
            steps.push(Step {
                event,
                terminal: desk.terminal_screen(),
                reader: desk.reader_screen(),
            });
        }
    }
    Trace {
        vendor,
        terminal,
        confirmed: desk.confirmed(),
        steps,
    }
}

/// One attempt in the reception log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub vendor: Vendor,
    pub terminal: TerminalState,
    pub confirmed: bool,
    /// `"901"`, `"terminal_error"`, `"no_qualification"`, `"certificate_expired"`, or none.
    pub error: Option<&'static str>,
}

/// The desk's log of attempts, so that "nothing lost" is visible: every failed attempt is there
/// to be retried after the restart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceptionLog {
    pub attempts: Vec<Attempt>,
}

impl ReceptionLog {
    /// Records how an attempt ended.
    pub fn record(&mut self, desk: &Reception) {
        let error = if desk.shows_901() {
            Some("901")
        } else if matches!(desk.stage, Stage::ErrorDialog1 | Stage::ErrorDialog2) {
            Some("terminal_error")
        } else {
            match desk.outcome {
                Some(QueryOutcome::NoQualification) => Some("no_qualification"),
                Some(QueryOutcome::CertificateExpired) => Some("certificate_expired"),
                _ => None,
            }
        };
        self.attempts.push(Attempt {
            number: u32::try_from(self.attempts.len() + 1).unwrap_or(u32::MAX),
            vendor: desk.vendor,
            terminal: desk.terminal,
            confirmed: desk.confirmed,
            error,
        });
    }

    /// How many attempts failed.
    pub fn failures(&self) -> usize {
        self.attempts.iter().filter(|a| !a.confirmed).count()
    }
}
