//! Rows as both stores read them, and their parsing into the domain types: one place that
//! turns stored text back into `onshi-core` values (a value that does not parse is `Corrupt`).

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Time;
use onshi_core::institution::Prefecture;
use onshi_core::offer::CampaignStatus;
use onshi_core::vendor::Vendor;
use onshi_core::version::Version;

use crate::time::parse_db_time;
use onshi_core::institution::InstitutionCode;
use onshi_core::notice::{NoticeKind, SiteFacts};

use onshi_core::trust::Signed;

use crate::{
    CampaignRecord, Deployment, Device, Institution, InstitutionKey, Mail, Release, Result,
    StoreError,
};

/// A campaign row: id, schedule, release id, selector JSON, max downloads, poll seconds, status.
pub(crate) type CampaignRow = (String, String, String, String, i64, i64, String);

/// A device as the token look-up returns it: who it is, without versions or last contact.
pub(crate) fn identity(d: &Device) -> Device {
    Device {
        installed: None,
        running: None,
        last_contact: None,
        ..d.clone()
    }
}

/// The `signature` column: the JSON list of a signed manifest's signatures.
pub(crate) fn signatures_text(signed: &Signed) -> Result<String> {
    serde_json::to_string(&signed.signatures).map_err(corrupt)
}

/// A release row back into a [`Release`].
pub(crate) fn release_row(id: &str, manifest: String, signatures: &str) -> Result<Release> {
    Ok(Release {
        id: id.to_owned(),
        manifest: serde_json::from_str(&manifest).map_err(corrupt)?,
        signed: Signed {
            signed: manifest,
            signatures: serde_json::from_str(signatures).map_err(corrupt)?,
        },
    })
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn ts(s: &str) -> Result<Timestamp> {
    parse_db_time(s).ok_or_else(|| corrupt(format!("bad instant {s:?}")))
}

pub(crate) fn opt_version(s: Option<String>) -> Result<Option<Version>> {
    s.map(|v| v.parse().map_err(corrupt)).transpose()
}

pub(crate) fn hhmm(t: Time) -> String {
    t.strftime("%H:%M").to_string()
}

pub(crate) struct RawInstitution {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) prefecture: i64,
    pub(crate) email: String,
    pub(crate) auto_restart: Option<String>,
    pub(crate) phone: Option<String>,
}

impl RawInstitution {
    pub(crate) fn parse(self) -> Result<Institution> {
        Ok(Institution {
            code: self.code.parse().map_err(corrupt)?,
            name: self.name,
            kind: self.kind.parse().map_err(corrupt)?,
            prefecture: u8::try_from(self.prefecture)
                .ok()
                .and_then(Prefecture::from_number)
                .ok_or_else(|| corrupt(format!("prefecture {}", self.prefecture)))?,
            email: self.email,
            auto_restart: self
                .auto_restart
                .map(|t| Time::strptime("%H:%M", &t).map_err(corrupt))
                .transpose()?,
            phone: self.phone,
        })
    }
}

pub(crate) struct RawDevice {
    pub(crate) id: i64,
    pub(crate) institution: String,
    pub(crate) kind: String,
    pub(crate) vendor: Option<String>,
    pub(crate) serial: String,
    pub(crate) parent: Option<i64>,
    pub(crate) installed: Option<String>,
    pub(crate) running: Option<String>,
    pub(crate) last_contact: Option<String>,
}

impl RawDevice {
    pub(crate) fn parse(self) -> Result<Device> {
        Ok(Device {
            id: self.id,
            institution: self.institution.parse().map_err(corrupt)?,
            kind: self.kind.parse().map_err(corrupt)?,
            vendor: self
                .vendor
                .map(|v| v.parse::<Vendor>().map_err(corrupt))
                .transpose()?,
            serial: self.serial,
            parent: self.parent,
            installed: opt_version(self.installed)?,
            running: opt_version(self.running)?,
            last_contact: self.last_contact.as_deref().map(ts).transpose()?,
        })
    }
}

pub(crate) struct RawDeployment {
    pub(crate) campaign_id: String,
    pub(crate) device_id: i64,
    pub(crate) state: String,
    pub(crate) bytes: i64,
    pub(crate) last_seq: i64,
    pub(crate) updated_at: String,
}

impl RawDeployment {
    pub(crate) fn parse(self) -> Result<Deployment> {
        Ok(Deployment {
            campaign_id: self.campaign_id,
            device_id: self.device_id,
            state: self.state.parse().map_err(corrupt)?,
            bytes: u64::try_from(self.bytes).map_err(corrupt)?,
            last_seq: self.last_seq,
            updated_at: ts(&self.updated_at)?,
        })
    }
}

pub(crate) fn parse_campaign(
    (id, schedule_toml, release_id, selector, max, poll, status): CampaignRow,
) -> Result<CampaignRecord> {
    Ok(CampaignRecord {
        id,
        schedule_toml,
        release_id,
        selector: serde_json::from_str(&selector).map_err(corrupt)?,
        max_downloads: u32::try_from(max).map_err(corrupt)?,
        poll_interval: Duration::from_secs(u64::try_from(poll).map_err(corrupt)?),
        status: CampaignStatus::parse(&status).ok_or_else(|| corrupt(status))?,
    })
}

pub(crate) fn key_column(which: InstitutionKey) -> &'static str {
    match which {
        InstitutionKey::Enrollment => "enrollment_key_hash",
        InstitutionKey::Access => "access_key_hash",
    }
}

/// The aggregate columns of a site's [`SiteFacts`] over `deployments p JOIN devices d`, in SQL
/// both databases read alike.
pub(crate) const FACTS_COLS: &str = "SUM(CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END),
    SUM(CASE WHEN d.kind = 'card_reader' THEN 1 ELSE 0 END),
    SUM(CASE WHEN p.state IN ('waiting', 'downloading', 'failed') THEN 1 ELSE 0 END),
    SUM(CASE WHEN d.kind = 'terminal' AND p.state = 'installed' THEN 1 ELSE 0 END),
    SUM(CASE WHEN p.state = 'applied' THEN 1 ELSE 0 END)";

/// [`SiteFacts`] from the five [`FACTS_COLS`] counts (NULL when there are no rows).
pub(crate) fn facts(counts: [Option<i64>; 5]) -> SiteFacts {
    let n = |i: usize| u32::try_from(counts[i].unwrap_or(0)).unwrap_or(0);
    SiteFacts {
        terminals: n(0),
        readers: n(1),
        not_received: n(2),
        restart_required: n(3),
        applied: n(4),
    }
}

pub(crate) const MAIL_COLS: &str =
    "id, campaign_id, institution_code, kind, notice_key, recipient, subject, body,
    attempts, next_attempt_at, last_error, created_at, sent_at";

/// An outbox row as read, before its values are checked.
pub(crate) struct MailRow {
    pub(crate) id: i64,
    pub(crate) campaign: String,
    pub(crate) institution: String,
    pub(crate) kind: String,
    pub(crate) key: String,
    pub(crate) recipient: String,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_at: String,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: String,
    pub(crate) sent_at: Option<String>,
}

impl MailRow {
    pub(crate) fn parse(self) -> Result<Mail> {
        Ok(Mail {
            id: self.id,
            campaign: self.campaign,
            institution: InstitutionCode::parse(&self.institution).map_err(corrupt)?,
            kind: NoticeKind::parse(&self.kind)
                .ok_or_else(|| corrupt(format!("notice kind {}", self.kind)))?,
            key: self.key,
            recipient: self.recipient,
            subject: self.subject,
            body: self.body,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            next_attempt_at: ts(&self.next_attempt_at)?,
            last_error: self.last_error,
            created_at: ts(&self.created_at)?,
            sent_at: self.sent_at.as_deref().map(ts).transpose()?,
        })
    }
}

/// The wave's entry in `out`, added empty if it is not there yet (the stores' wave health).
pub(crate) fn wave_entry(
    out: &mut Vec<onshi_core::waves::WaveHealth>,
    wave: i64,
) -> Result<&mut onshi_core::waves::WaveHealth> {
    let wave = u16::try_from(wave).map_err(corrupt)?;
    let i = match out.iter().position(|h| h.wave == wave) {
        Some(i) => i,
        None => {
            out.push(onshi_core::waves::WaveHealth {
                wave,
                ..Default::default()
            });
            out.len() - 1
        }
    };
    Ok(&mut out[i])
}
