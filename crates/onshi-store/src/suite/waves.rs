//! Waves and health gates: each site's wave, the campaign's wave progress changed
//! compare-and-set (with its status, audit line and one operator mail), each wave's counts, and
//! the operator's outbox.

use onshi_core::waves::{Breach, Hold, Limit, Metric, WaveProgress};

use super::*;

fn hold_at(minute: i64) -> Hold {
    Hold {
        wave: 0,
        breach: Breach {
            metric: Metric::Unhealthy,
            count: 1,
            base: 1,
            limit: Limit {
                max_percent: 1.0,
                at_least: 1,
            },
            crossed: true,
        },
        at: at(minute),
    }
}

fn report(store: &dyn Store, device: i64, seq: i64, from: DeploymentState, to: DeploymentState) {
    let applied = store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device,
            seq,
            from,
            to,
            bytes: 0,
            at: at(seq),
        })
        .expect("the report applies");
    assert!(matches!(applied, ReportOutcome::Applied(_)), "{applied:?}");
}

pub(super) fn waves_start_once_and_keep_their_sites(b: &Backend) {
    let f = Fixture::new(b);
    let r = f.rollout();
    let clinic_1 = f.store.device(r.clinic_1).expect("read").expect("device");
    let pharmacy = f.store.device(r.pharmacy).expect("read").expect("device");
    let first = WaveProgress::start(at(0));
    assert_eq!(f.store.wave_progress(CAMPAIGN).expect("read"), None);
    f.store
        .start_waves(
            CAMPAIGN,
            &[(clinic_1.institution, 0), (pharmacy.institution, 1)],
            &first,
            at(0),
        )
        .expect("waves start");
    // A second activation (another replica, a retry) keeps the first deal.
    f.store
        .start_waves(
            CAMPAIGN,
            &[(clinic_1.institution, 1)],
            &WaveProgress::start(at(5)),
            at(5),
        )
        .expect("a second start is harmless");
    assert_eq!(f.store.wave_progress(CAMPAIGN).expect("read"), Some(first));
    let mut expected = vec![(clinic_1.institution, 0), (pharmacy.institution, 1)];
    expected.sort();
    assert_eq!(f.store.wave_sites(CAMPAIGN).expect("read"), expected);
}

pub(super) fn a_wave_change_is_compare_and_set_with_its_status_audit_and_one_mail(b: &Backend) {
    let f = Fixture::new(b);
    f.rollout();
    f.store
        .set_campaign_status(CAMPAIGN, CampaignStatus::Active, at(0))
        .expect("active");
    let first = WaveProgress::start(at(0));
    f.store
        .start_waves(CAMPAIGN, &[], &first, at(0))
        .expect("waves start");
    let held = WaveProgress {
        hold: Some(hold_at(30)),
        ..first.clone()
    };
    let audit = AuditEntry {
        at: at(30),
        actor: "gate".to_owned(),
        action: "campaign_held".to_owned(),
        subject: CAMPAIGN.to_owned(),
        detail: "wave 1".to_owned(),
    };
    let mail = NewOperatorMail {
        key: "hold:0",
        recipient: "ops@example.jp",
        subject: "held",
        body: "wave 1 held",
    };
    let change = WaveChange {
        campaign: CAMPAIGN,
        expected: &first,
        next: &held,
        status: Some((CampaignStatus::Active, CampaignStatus::Paused)),
        audit: Some(&audit),
        mail: Some(&mail),
        rollback: None,
        at: at(30),
    };
    // Two replicas judge the same gate at once: one wins.
    let other = b.open();
    assert!(f.store.change_waves(&change).expect("changed"));
    assert!(!other.change_waves(&change).expect("refused, not an error"));
    assert_eq!(
        other.wave_progress(CAMPAIGN).expect("read"),
        Some(held.clone())
    );
    let campaign = other.campaign(CAMPAIGN).expect("read").expect("campaign");
    assert_eq!(campaign.status, CampaignStatus::Paused);
    let log = other.audit_log(10).expect("audit");
    assert_eq!(
        log.iter().filter(|e| e.action == "campaign_held").count(),
        1,
        "{log:?}"
    );
    let mails = other.operator_mails(CAMPAIGN).expect("mails");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].recipient, "ops@example.jp");
    assert_eq!(mails[0].sent_at, None);

    // A change whose status does not match changes nothing at all.
    let resumed = held.resumed();
    let wrong = WaveChange {
        expected: &held,
        next: &resumed,
        status: Some((CampaignStatus::Active, CampaignStatus::Paused)),
        audit: None,
        mail: None,
        rollback: None,
        ..change
    };
    assert!(!f.store.change_waves(&wrong).expect("refused"));
    assert_eq!(f.store.wave_progress(CAMPAIGN).expect("read"), Some(held));
}

/// Deals the sites of the given devices into the given waves (the others are not dealt).
fn deal(f: &Fixture, waves: &[(i64, u16)]) {
    let sites: Vec<_> = waves
        .iter()
        .map(|&(device, wave)| {
            let site = f.store.device(device).expect("read").expect("device");
            (site.institution, wave)
        })
        .collect();
    f.store
        .start_waves(CAMPAIGN, &sites, &WaveProgress::start(at(0)), at(0))
        .expect("waves start");
}

pub(super) fn wave_health_counts_each_wave_with_unassigned_sites_in_the_last(b: &Backend) {
    use DeploymentState::{Applied, Failed, Installed};
    let f = Fixture::new(b);
    let r = f.rollout();
    deal(&f, &[(r.clinic_1, 0), (r.clinic_2, 0)]);
    let s = f.store.as_ref();
    // clinic 1's terminal (downloading) installs, restarts onto the new version, and its
    // self-check fails; clinic 2's terminal fails its download; the pharmacy (wave 1, not
    // assigned) restarts without the new version.
    report(s, r.clinic_1, 2, Downloading, Downloaded);
    report(s, r.clinic_1, 3, Downloaded, Installing);
    report(s, r.clinic_1, 4, Installing, Installed);
    report(s, r.clinic_1, 5, Installed, Applied);
    s.record_restart(CAMPAIGN, r.clinic_1, RestartNote::Unhealthy, at(5))
        .expect("recorded");
    report(s, r.clinic_2, 1, Waiting, Downloading);
    report(s, r.clinic_2, 2, Downloading, Failed);
    report(s, r.pharmacy, 1, Waiting, Downloading);
    report(s, r.pharmacy, 2, Downloading, Downloaded);
    report(s, r.pharmacy, 3, Downloaded, Installing);
    report(s, r.pharmacy, 4, Installing, Installed);
    s.record_restart(CAMPAIGN, r.pharmacy, RestartNote::OldVersion, at(10))
        .expect("recorded");
    // A second restart keeps the first instant.
    s.record_restart(CAMPAIGN, r.pharmacy, RestartNote::OldVersion, at(50))
        .expect("recorded");
    let health = s.wave_health(CAMPAIGN, 1, at(20)).expect("health");
    assert_eq!(health.len(), 2, "{health:?}");
    let w0 = health[0];
    assert_eq!(
        (w0.wave, w0.sites, w0.devices, w0.terminals, w0.started),
        (0, 2, 4, 2, 2),
        "{w0:?}"
    );
    assert_eq!(
        (
            w0.failed,
            w0.applied_terminals,
            w0.unhealthy,
            w0.restarted_old
        ),
        (1, 1, 1, 0),
        "{w0:?}"
    );
    let w1 = health[1];
    assert_eq!(
        (w1.wave, w1.sites, w1.devices, w1.terminals),
        (1, 0, 2, 1),
        "{w1:?}"
    );
    assert_eq!(
        (w1.restarted_old, w1.restarted_old_overdue),
        (1, 1),
        "restarted at minute 10, overdue from minute 20: {w1:?}"
    );
    let before = s.wave_health(CAMPAIGN, 1, at(9)).expect("health");
    assert_eq!(before[1].restarted_old_overdue, 0, "{before:?}");
}

/// The counts are kept as devices change after the sites were dealt (migration 0007's
/// triggers), in every direction a device can move: a failure retried, a self-check that
/// recovers, a device enrolled later, and none of another campaign's devices.
pub(super) fn wave_health_follows_every_change_after_the_sites_are_dealt(b: &Backend) {
    use DeploymentState::{Applied, Downloaded, Failed, Installed, Installing};
    let f = Fixture::new(b);
    let r = f.rollout();
    deal(&f, &[(r.clinic_1, 0), (r.pharmacy, 1)]);
    let s = f.store.as_ref();
    // Another campaign's devices never count in this one's waves.
    f.campaign("other", at(0));
    s.ensure_deployments("other", &r.all(), at(0))
        .expect("deployments");
    let wave = |w: u16| {
        let health = s.wave_health(CAMPAIGN, 2, at(1000)).expect("health");
        health
            .iter()
            .find(|h| h.wave == w)
            .copied()
            .unwrap_or_default()
    };
    // Dealt: clinic 1 in wave 0, the pharmacy in wave 1, clinic 2 not dealt (the last, 2).
    assert_eq!((wave(0).sites, wave(0).devices, wave(0).started), (1, 2, 1));
    assert_eq!((wave(1).sites, wave(1).devices, wave(1).started), (1, 2, 1));
    assert_eq!(
        (wave(2).sites, wave(2).devices, wave(2).terminals),
        (0, 2, 1)
    );

    // Clinic 2's terminal fails, is retried and downloads again.
    report(s, r.clinic_2, 1, Waiting, Downloading);
    report(s, r.clinic_2, 2, Downloading, Failed);
    assert_eq!((wave(2).started, wave(2).failed), (1, 1));
    report(s, r.clinic_2, 3, Failed, Waiting);
    assert_eq!((wave(2).started, wave(2).failed), (0, 0));
    report(s, r.clinic_2, 4, Waiting, Downloading);
    assert_eq!((wave(2).started, wave(2).failed), (1, 0));

    // Clinic 1's terminal is applied; its self-check fails, then passes.
    report(s, r.clinic_1, 2, Downloading, Downloaded);
    report(s, r.clinic_1, 3, Downloaded, Installing);
    report(s, r.clinic_1, 4, Installing, Installed);
    report(s, r.clinic_1, 5, Installed, Applied);
    s.record_restart(CAMPAIGN, r.clinic_1, RestartNote::Unhealthy, at(5))
        .expect("recorded");
    assert_eq!((wave(0).applied_terminals, wave(0).unhealthy), (1, 1));
    s.record_restart(CAMPAIGN, r.clinic_1, RestartNote::Healthy, at(6))
        .expect("recorded");
    assert_eq!((wave(0).applied_terminals, wave(0).unhealthy), (1, 0));
    assert_eq!(wave(0).restarted_healthy(), 1);

    // The pharmacy's terminal restarts without the new version, then is applied.
    report(s, r.pharmacy, 1, Waiting, Downloading);
    report(s, r.pharmacy, 2, Downloading, Downloaded);
    report(s, r.pharmacy, 3, Downloaded, Installing);
    report(s, r.pharmacy, 4, Installing, Installed);
    s.record_restart(CAMPAIGN, r.pharmacy, RestartNote::OldVersion, at(10))
        .expect("recorded");
    assert_eq!(
        (wave(1).restarted_old, wave(1).restarted_old_overdue),
        (1, 1)
    );
    report(s, r.pharmacy, 5, Installed, Applied);
    assert_eq!(
        (wave(1).restarted_old, wave(1).restarted_old_overdue),
        (0, 0)
    );
    assert_eq!(wave(1).applied_terminals, 1);

    // A terminal enrolled in clinic 1's site later joins wave 0; one of a new site, the last.
    let late = f.enrol(&NewDevice {
        serial: "T-late".to_owned(),
        token_hash: "token-of-T-late".to_owned(),
        ..Fixture::terminal_of(&Fixture::institution(13, Clinic, 1))
    });
    let stranger = f.terminal(&f.site(13, Clinic, 9));
    s.ensure_deployments(CAMPAIGN, &[late.id, stranger.id], at(20))
        .expect("deployments");
    assert_eq!((wave(0).devices, wave(0).terminals), (3, 2));
    assert_eq!((wave(2).devices, wave(2).terminals), (3, 2));
}

pub(super) fn operator_mails_are_claimed_once_and_marked_sent(b: &Backend) {
    let f = Fixture::new(b);
    f.rollout();
    f.store
        .set_campaign_status(CAMPAIGN, CampaignStatus::Active, at(0))
        .expect("active");
    let first = WaveProgress::start(at(0));
    f.store
        .start_waves(CAMPAIGN, &[], &first, at(0))
        .expect("waves start");
    let held = WaveProgress {
        hold: Some(hold_at(1)),
        ..first.clone()
    };
    let mail = NewOperatorMail {
        key: "hold:0",
        recipient: "ops@example.jp",
        subject: "held",
        body: "body",
    };
    assert!(
        f.store
            .change_waves(&WaveChange {
                campaign: CAMPAIGN,
                expected: &first,
                next: &held,
                status: None,
                audit: None,
                mail: Some(&mail),
                rollback: None,
                at: at(1),
            })
            .expect("changed")
    );
    let claimed = f
        .store
        .claim_operator_mails(at(2), at(12), 10)
        .expect("claimed");
    assert_eq!(claimed.len(), 1);
    assert!(
        b.open()
            .claim_operator_mails(at(3), at(13), 10)
            .expect("claim")
            .is_empty(),
        "a claimed mail is not claimed again before its claim runs out"
    );
    f.store
        .operator_mail_failed(claimed[0].id, "relay down", at(4))
        .expect("failed");
    let again = f
        .store
        .claim_operator_mails(at(4), at(14), 10)
        .expect("claimed");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    f.store
        .operator_mail_sent(again[0].id, at(5))
        .expect("sent");
    assert!(
        f.store
            .claim_operator_mails(at(100), at(110), 10)
            .expect("claim")
            .is_empty()
    );
    let mails = f.store.operator_mails(CAMPAIGN).expect("mails");
    assert_eq!(mails[0].sent_at, Some(at(5)));
}

pub(super) fn a_rollback_closes_the_campaign_and_opens_one_for_its_devices_only(b: &Backend) {
    use DeploymentState::Installed;
    let f = Fixture::new(b);
    let r = f.rollout();
    let code = |id: i64| {
        f.store
            .device(id)
            .expect("read")
            .expect("device")
            .institution
    };
    f.store
        .set_campaign_status(CAMPAIGN, CampaignStatus::Paused, at(0))
        .expect("held");
    let first = WaveProgress::start(at(0));
    f.store
        .start_waves(
            CAMPAIGN,
            &[(code(r.clinic_1), 0), (code(r.clinic_2), 0)],
            &first,
            at(0),
        )
        .expect("waves start");
    let s = f.store.as_ref();
    report(s, r.clinic_1, 2, Downloading, Downloaded);
    report(s, r.clinic_1, 3, Downloaded, Installing);
    report(s, r.clinic_1, 4, Installing, Installed);
    // The pharmacy (not assigned: the last wave) has its reader downloading.
    let mut devices = s.wave_devices(CAMPAIGN, 1).expect("devices");
    devices.sort_unstable();
    let mut expected = vec![
        (r.clinic_1, 0, Installed),
        (r.pharmacy_reader, 1, Downloading),
    ];
    expected.sort_unstable();
    assert_eq!(devices, expected, "waiting devices are left out");

    let record = CampaignRecord {
        id: "rollback-1".to_owned(),
        status: CampaignStatus::Active,
        ..Fixture::campaign_record("rollback-1")
    };
    let next = first.rolled_back(onshi_core::waves::RolledBack {
        release_id: RELEASE.to_owned(),
        version: onshi_core::version::Version::parse("2.0.1").expect("version"),
        campaign: record.id.clone(),
        devices: 1,
        at: at(40),
    });
    let audit = AuditEntry {
        at: at(40),
        actor: "operator".to_owned(),
        action: "campaign_rolled_back".to_owned(),
        subject: CAMPAIGN.to_owned(),
        detail: "to rollback-1".to_owned(),
    };
    let change = WaveChange {
        campaign: CAMPAIGN,
        expected: &first,
        next: &next,
        status: Some((CampaignStatus::Paused, CampaignStatus::Closed)),
        audit: Some(&audit),
        mail: None,
        rollback: Some(NewRollback {
            campaign: &record,
            devices: &[r.clinic_1],
        }),
        at: at(40),
    };
    // Asked twice (a retry, another replica): the first makes it, the second nothing.
    let other = b.open();
    assert!(f.store.change_waves(&change).expect("rolled back"));
    assert!(!other.change_waves(&change).expect("refused, not an error"));
    let bad = other.campaign(CAMPAIGN).expect("read").expect("campaign");
    assert_eq!(bad.status, CampaignStatus::Closed);
    let rollback = other
        .campaign("rollback-1")
        .expect("read")
        .expect("created");
    assert_eq!(rollback.status, CampaignStatus::Active);
    assert_eq!(other.wave_progress(CAMPAIGN).expect("read"), Some(next));
    // Only the one device is in the rollback campaign; every other device has nothing open.
    let listed = other
        .deployments("rollback-1", &DeploymentFilter::default())
        .expect("listing");
    assert_eq!(
        listed.iter().map(|l| l.device.id).collect::<Vec<_>>(),
        vec![r.clinic_1]
    );
    for store in [f.store.as_ref(), other.as_ref()] {
        let open = store.open_deployments_of(r.clinic_1).expect("open");
        assert_eq!(
            open.iter()
                .map(|d| (d.campaign_id.as_str(), d.state))
                .collect::<Vec<_>>(),
            vec![("rollback-1", Waiting)]
        );
        for device in r.all().into_iter().filter(|d| *d != r.clinic_1) {
            assert_eq!(store.open_deployments_of(device).expect("open"), vec![]);
        }
    }
    let log = other.audit_log(10).expect("audit");
    assert_eq!(
        log.iter()
            .filter(|e| e.action == "campaign_rolled_back")
            .count(),
        1,
        "{log:?}"
    );
}
