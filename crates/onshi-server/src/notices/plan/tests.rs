//! Planning by pages against a real store (SQLite, and PostgreSQL when one is reachable, as the
//! store suite does): more sites than a page, a second round, a round cut off halfway.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use onshi_core::institution::{InstitutionKind, Prefecture, ScoreTable};
use onshi_core::release::{Component, Manifest, Sha256, Target, decode_signing_key};
use onshi_core::selector::Selector;
use onshi_core::trust::{Role, Signed};
use onshi_core::vendor::DeviceKind;
use onshi_core::version::Version;
use onshi_store::testing::TestSchema;
use onshi_store::{
    CampaignRecord, Institution, NewDevice, PostgresStore, Release, SqliteStore, Store,
};

use super::*;

const CAMPAIGN: &str = "2026-01-terminal";
/// 13:00 in Japan on the day of the preset's first night (2026-01-19): the announcement and the keep-power-on reminder
/// are due everywhere, the silent mail at sites whose terminal is silent.
const AT: &str = "2026-01-19T04:00:00Z";
const SITES: u16 = 5;
/// Sites 2 and 5 have a terminal last heard from four days ago.
const SILENT: [u16; 2] = [2, 5];
/// Two mails a site, and the silent mail at two.
const DUE: u64 = 2 * SITES as u64 + SILENT.len() as u64;

fn at() -> Timestamp {
    AT.parse().expect("instant")
}

fn site(n: u16) -> Institution {
    let prefecture = Prefecture::from_number(13).expect("Tokyo");
    Institution {
        code: InstitutionCode::from_parts(prefecture, ScoreTable::Medical, 1, n).expect("code"),
        name: format!("clinic {n}"),
        kind: InstitutionKind::Clinic,
        prefecture,
        email: format!("it-{n}@example.jp"),
        auto_restart: None,
        phone: None,
    }
}

/// [`SITES`] sites, a terminal each, targeted by an active campaign; the terminals of
/// [`SILENT`] last heard from four days before [`AT`], the others an hour before.
fn populate(store: &dyn Store) {
    let t0: Timestamp = "2026-01-10T00:00:00Z".parse().expect("instant");
    let sites: Vec<_> = (1..=SITES).map(site).collect();
    store.upsert_institutions(&sites, t0).expect("sites");
    let manifest = Manifest {
        role: Role::Targets,
        release_id: "2026.1".to_owned(),
        version: Version::parse("2026.1.0").expect("version"),
        created_at: "2026-01-10T00:00:00Z".to_owned(),
        expires: "2027-01-10T00:00:00Z".parse().expect("instant"),
        deltas: Vec::new(),
        components: vec![Component {
            target: Target::Terminal,
            sha256: Sha256::of(b"terminal package"),
            size: 1024,
        }],
    };
    let key = decode_signing_key("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").expect("key");
    store
        .insert_release(
            &Release {
                id: "2026.1".to_owned(),
                signed: Signed::sign(&manifest, &[&key]),
                manifest,
            },
            t0,
        )
        .expect("release");
    store
        .insert_campaign(
            &CampaignRecord {
                id: CAMPAIGN.to_owned(),
                schedule_toml: onshi_core::schedule::preset_text("2026-01")
                    .expect("preset")
                    .to_owned(),
                release_id: "2026.1".to_owned(),
                selector: Selector::all(),
                max_downloads: 50,
                poll_interval: Duration::from_secs(900),
                status: CampaignStatus::Active,
            },
            t0,
        )
        .expect("campaign");
    let mut ids = Vec::new();
    for (n, s) in (1..=SITES).zip(&sites) {
        let device = store
            .enrol_device(
                &NewDevice {
                    institution: s.code,
                    kind: DeviceKind::Terminal,
                    vendor: None,
                    serial: format!("T-{n}"),
                    parent: None,
                    token_hash: format!("token-{n}"),
                },
                &onshi_store::EnrolRules::default(),
                t0,
            )
            .expect("terminal");
        let ago = if SILENT.contains(&n) {
            SignedDuration::from_hours(96)
        } else {
            SignedDuration::from_hours(1)
        };
        store
            .record_contact(device.id, None, None, at() - ago)
            .expect("contact");
        ids.push(device.id);
    }
    store.flush().expect("flushed");
    store
        .ensure_deployments(CAMPAIGN, &ids, t0)
        .expect("deployments");
}

fn plan() -> Plan {
    let schedule = Campaign::preset("2026-01").expect("the 2026-01 schedule");
    Plan {
        campaign: CAMPAIGN.to_owned(),
        status: CampaignStatus::Active,
        silence: Some(Silence::at(at(), schedule.silent_after())),
        schedule: Arc::new(schedule),
        at: at(),
        waves: None,
    }
}

/// A whole round of one campaign, `limit` sites a page: (pages, mails planned).
fn round(store: &dyn Store, limit: u32) -> (usize, u64) {
    let (mut after, mut pages, mut planned) = (None, 0, 0);
    loop {
        let done = plan_page(store, &plan(), after, limit).expect("a page");
        planned += done.planned;
        match done.through {
            Some(through) => {
                after = Some(through);
                pages += 1;
            }
            None => return (pages, planned),
        }
    }
}

/// Each site's planned (kind, key)s, by site number.
fn outbox(store: &dyn Store) -> Vec<(u16, Vec<(NoticeKind, String)>)> {
    let keys = store.mail_keys(CAMPAIGN).expect("keys");
    (1..=SITES)
        .map(|n| {
            let mut of_site: Vec<_> = keys
                .iter()
                .filter(|(code, _, _)| *code == site(n).code)
                .map(|(_, kind, key)| (*kind, key.clone()))
                .collect();
            of_site.sort();
            (n, of_site)
        })
        .collect()
}

fn expected() -> Vec<(u16, Vec<(NoticeKind, String)>)> {
    (1..=SITES)
        .map(|n| {
            let mut due = vec![
                (NoticeKind::Announcement, notice::ONCE.to_owned()),
                (NoticeKind::KeepPowerOn, "2026-01-19".to_owned()),
            ];
            if SILENT.contains(&n) {
                due.push((NoticeKind::Silent, "2026-01-19".to_owned()));
            }
            due.sort();
            (n, due)
        })
        .collect()
}

fn on_each_store(test: impl Fn(&dyn Store)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(&dir.path().join("onshi.db")).expect("sqlite");
    test(&sqlite);
    if let Some(schema) = TestSchema::create() {
        let pg = PostgresStore::open(&schema.url).expect("postgres");
        test(&pg);
    }
}

#[test]
fn planning_more_sites_than_a_page_plans_every_sites_mails_and_a_second_round_adds_none() {
    on_each_store(|store| {
        populate(store);
        let (pages, planned) = round(store, 2);
        assert_eq!(pages, 3, "five sites, two a page");
        assert_eq!(planned, DUE);
        assert_eq!(outbox(store), expected());
        assert_eq!(round(store, 2), (3, 0), "a second round plans nothing new");
        assert_eq!(outbox(store), expected());
    });
}

#[test]
fn a_round_cut_off_after_its_first_page_and_run_again_neither_loses_nor_doubles_a_mail() {
    on_each_store(|store| {
        populate(store);
        let first = plan_page(store, &plan(), None, 2).expect("the first page");
        assert_eq!(first.through, Some(site(2).code));
        assert_eq!(
            first.planned, 5,
            "sites 1 and 2, site 2's silent mail among them"
        );
        // The worker stops here (a restart, a nudge); the next round starts from the first site.
        let (_, planned) = round(store, 2);
        assert_eq!(first.planned + planned, DUE);
        assert_eq!(outbox(store), expected());
    });
}

#[test]
fn a_site_without_an_address_is_skipped_and_the_page_still_advances() {
    on_each_store(|store| {
        populate(store);
        let mut no_mail = site(1);
        no_mail.email = String::new();
        store
            .upsert_institutions(&[no_mail], at())
            .expect("updated");
        let first = plan_page(store, &plan(), None, 1).expect("a page");
        assert_eq!(
            first,
            PageDone {
                through: Some(site(1).code),
                planned: 0
            }
        );
        assert_eq!(round(store, 2).1, DUE - 2);
    });
}
