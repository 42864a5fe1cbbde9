//! Store records as `onshi-api`'s wire types: the one place a row becomes an answer, so the
//! store's structs never reach a client directly.

use onshi_api::{admin, institution};
use onshi_store::{AuditEntry, DeploymentListing, Device, Institution, Mail, MailSummary};

use crate::services::devices::{SiteDevice, SiteStatus};

/// An institution as answered.
pub fn institution(i: &Institution) -> admin::Institution {
    admin::Institution {
        code: i.code,
        name: i.name.clone(),
        kind: i.kind,
        prefecture: i.prefecture,
        email: i.email.clone(),
        auto_restart: i.auto_restart.map(|t| t.strftime("%H:%M").to_string()),
        phone: i.phone.clone(),
    }
}

/// A device as answered.
pub fn device(d: &Device) -> admin::Device {
    admin::Device {
        id: d.id,
        institution: d.institution,
        kind: d.kind,
        vendor: d.vendor,
        serial: d.serial.clone(),
        parent: d.parent,
        installed: d.installed.clone(),
        running: d.running.clone(),
        last_contact: d.last_contact.map(|t| t.to_string()),
    }
}

/// A campaign's device row as answered.
pub fn listing(l: &DeploymentListing) -> admin::DeploymentListing {
    admin::DeploymentListing {
        institution: institution(&l.institution),
        device: device(&l.device),
        state: l.state,
        bytes: l.bytes,
        updated_at: l.updated_at.to_string(),
    }
}

/// An audit line as answered.
pub fn audit_entry(e: &AuditEntry) -> admin::AuditEntry {
    admin::AuditEntry {
        at: e.at.to_string(),
        actor: e.actor.clone(),
        action: e.action.clone(),
        subject: e.subject.clone(),
        detail: e.detail.clone(),
    }
}

/// A notice mail as answered.
pub fn mail(m: &Mail) -> admin::Mail {
    admin::Mail {
        id: m.id,
        campaign: m.campaign.clone(),
        institution: m.institution,
        kind: m.kind,
        key: m.key.clone(),
        recipient: m.recipient.clone(),
        subject: m.subject.clone(),
        body: m.body.clone(),
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at.to_string(),
        last_error: m.last_error.clone(),
        created_at: m.created_at.to_string(),
        sent_at: m.sent_at.map(|t| t.to_string()),
    }
}

/// The outbox's counts as answered.
pub fn mail_summary(s: &MailSummary) -> admin::MailSummary {
    admin::MailSummary {
        sent: s.sent,
        pending: s.pending,
        retrying: s.retrying,
        gave_up: s.gave_up,
        by_kind: s
            .by_kind
            .iter()
            .map(|(kind, c)| {
                (
                    *kind,
                    admin::MailCount {
                        sent: c.sent,
                        pending: c.pending,
                    },
                )
            })
            .collect(),
    }
}

/// A site's devices as the institution API answers them.
pub fn site_status(s: &SiteStatus) -> institution::SiteStatus {
    institution::SiteStatus {
        code: s.code,
        name: s.name.clone(),
        devices: s.devices.iter().map(site_device).collect(),
    }
}

fn site_device(d: &SiteDevice) -> institution::SiteDevice {
    institution::SiteDevice {
        device: device(&d.device),
        campaign: d.campaign.clone(),
        state: d.state,
        restart_required: d.restart_required,
        label_ja: d.label_ja.clone(),
    }
}
