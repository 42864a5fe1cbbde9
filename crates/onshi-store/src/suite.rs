//! Specifications of the store, one behaviour per test, run against both backends: the
//! [`suite!`] at the end turns each function here into a test in `suite::sqlite` and one in
//! `suite::postgres` (a fresh schema per test). Instants are minutes after 2026-01-19 20:00 JST
//! (see [`at`]); [`Fixture`] is the one place that builds sites, devices and campaigns.

use jiff::SignedDuration;
use jiff::civil::time;
use onshi_core::institution::ScoreTable;
use onshi_core::notice::{NoticeKind, SiteFacts};
use onshi_core::release::{Component, Target, decode_signing_key};
use onshi_core::selector::Selector;
use onshi_core::trust::{Role, Signed};

use std::time::Duration;

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::{Manifest, Sha256};
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;

use crate::testing::TestSchema;
use crate::*;

use DeploymentState::{Downloaded, Downloading, Installing, Waiting};

mod waves;
use InstitutionKind::{Clinic, Hospital, Pharmacy};
use waves::*;

const CAMPAIGN: &str = "2026-01-terminal";
const RELEASE: &str = "2026.1";

/// `SigningKey::from_bytes(&[7; 32])` as the key file writes it (ed25519-dalek is not a
/// dependency of this crate, so the key is decoded the way the server reads it).
const SIGNING_KEY_7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// `minute` minutes after 2026-01-19T11:00Z (20:00 JST, when the night window opens).
fn at(minute: i64) -> Timestamp {
    let start: Timestamp = "2026-01-19T11:00:00Z".parse().expect("a valid instant");
    start + SignedDuration::from_mins(minute)
}

fn version(text: &str) -> Version {
    Version::parse(text).expect("a valid version")
}

/// Where a test's database lives: a SQLite file in a temporary directory, or a PostgreSQL
/// schema of its own. Opening it again is what a restart (or a second replica) does.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestSchema),
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("a temporary directory"))
    }

    /// `None` (the test is skipped) only outside CI when PostgreSQL is not running.
    fn postgres() -> Option<Self> {
        TestSchema::create().map(Self::Postgres)
    }

    /// A store on this database; each call opens another, as a second process would.
    fn open(&self) -> Box<dyn Store> {
        match self {
            Self::Sqlite(dir) => Box::new(
                SqliteStore::open(&dir.path().join("onshi.db")).expect("the database file opens"),
            ),
            Self::Postgres(schema) => {
                Box::new(PostgresStore::open(&schema.url).expect("the database opens"))
            }
        }
    }

    /// The migrations this backend applies.
    fn migrations(&self) -> crate::migrations::Backend {
        match self {
            Self::Sqlite(_) => crate::migrations::Backend::Sqlite,
            Self::Postgres(_) => crate::migrations::Backend::Postgres,
        }
    }

    /// Runs statements straight on the database (not through a store).
    fn execute_batch(&self, sql: &str) {
        match self {
            Self::Sqlite(dir) => rusqlite::Connection::open(dir.path().join("onshi.db"))
                .expect("the database file opens")
                .execute_batch(sql)
                .expect("the statements run"),
            Self::Postgres(schema) => schema
                .client()
                .batch_execute(sql)
                .expect("the statements run"),
        }
    }

    /// Runs one query returning integers, straight on the database (not through a store).
    fn integers(&self, sql: &str) -> Vec<i64> {
        match self {
            Self::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("onshi.db"))
                    .expect("the database file opens");
                let mut stmt = conn.prepare(sql).expect("a valid query");
                stmt.query_map([], |r| r.get(0))
                    .expect("the query runs")
                    .collect::<rusqlite::Result<Vec<i64>>>()
                    .expect("integers")
            }
            Self::Postgres(schema) => schema
                .client()
                .query(sql, &[])
                .expect("the query runs")
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect(),
        }
    }
}

/// A store and the rows most specifications stand on.
struct Fixture {
    store: Box<dyn Store>,
}

impl Fixture {
    fn new(backend: &Backend) -> Self {
        Self {
            store: backend.open(),
        }
    }

    /// Institution number `n` of `kind` in `prefecture`, not yet stored.
    fn institution(prefecture: u8, kind: InstitutionKind, n: u16) -> Institution {
        let table = match kind {
            Hospital | Clinic => ScoreTable::Medical,
            InstitutionKind::Dental => ScoreTable::Dental,
            Pharmacy => ScoreTable::Pharmacy,
        };
        let prefecture = Prefecture::from_number(prefecture).expect("a prefecture number");
        let code = InstitutionCode::from_parts(prefecture, table, 1, n).expect("valid code parts");
        Institution {
            code,
            name: format!("{kind} {n}"),
            kind,
            prefecture,
            email: format!("it-{n}@example.jp"),
            auto_restart: None,
            phone: None,
        }
    }

    /// Stores institution number `n` of `kind` in `prefecture`.
    fn site(&self, prefecture: u8, kind: InstitutionKind, n: u16) -> Institution {
        let site = Self::institution(prefecture, kind, n);
        self.store
            .upsert_institutions(std::slice::from_ref(&site), at(0))
            .expect("the institution is stored");
        site
    }

    /// The site's terminal, not yet enrolled.
    fn terminal_of(site: &Institution) -> NewDevice {
        NewDevice {
            institution: site.code,
            kind: DeviceKind::Terminal,
            vendor: None,
            serial: format!("T-{}", site.code),
            parent: None,
            token_hash: format!("token-of-T-{}", site.code),
        }
    }

    /// A card reader of `vendor` attached to `terminal`, not yet enrolled.
    fn reader_of(terminal: &Device, vendor: Vendor) -> NewDevice {
        NewDevice {
            institution: terminal.institution,
            kind: DeviceKind::CardReader,
            vendor: Some(vendor),
            serial: format!("R-{}", terminal.institution),
            parent: Some(terminal.id),
            token_hash: format!("token-of-R-{}", terminal.institution),
        }
    }

    fn enrol(&self, device: &NewDevice) -> Device {
        self.store
            .enrol_device(device, &EnrolRules::default(), at(0))
            .expect("the device enrols")
    }

    /// Enrols `device` within `rules` at `when`: the device, or why it was refused.
    fn try_enrol(
        &self,
        device: &NewDevice,
        rules: &EnrolRules<'_>,
        when: Timestamp,
    ) -> std::result::Result<Device, EnrolRefusal> {
        match self.store.enrol_device(device, rules, when) {
            Ok(d) => Ok(d),
            Err(StoreError::EnrolRefused(why)) => Err(why),
            Err(e) => panic!("enrolment failed: {e}"),
        }
    }

    fn terminal(&self, site: &Institution) -> Device {
        self.enrol(&Self::terminal_of(site))
    }

    fn reader(&self, terminal: &Device, vendor: Vendor) -> Device {
        self.enrol(&Self::reader_of(terminal, vendor))
    }

    /// The release every campaign distributes, signed with [`SIGNING_KEY_7`].
    fn release() -> Release {
        let manifest = Manifest {
            role: Role::Targets,
            release_id: RELEASE.to_owned(),
            version: version("2026.1.0"),
            created_at: "2026-01-10T00:00:00Z".to_owned(),
            expires: "2027-01-10T00:00:00Z".parse().expect("instant"),
            deltas: Vec::new(),
            components: vec![
                Component {
                    target: Target::Terminal,
                    sha256: Sha256::of(b"terminal package"),
                    size: 52_428_800,
                },
                Component {
                    target: Target::CardReader(Vendor::Canon),
                    sha256: Sha256::of(b"canon reader package"),
                    size: 8_388_608,
                },
            ],
        };
        let key = decode_signing_key(SIGNING_KEY_7).expect("a valid signing key");
        Release {
            id: RELEASE.to_owned(),
            signed: Signed::sign(&manifest, &[&key]),
            manifest,
        }
    }

    /// Campaign `id` of [`Self::release`] to every device, as a draft.
    fn campaign_record(id: &str) -> CampaignRecord {
        CampaignRecord {
            id: id.to_owned(),
            schedule_toml: "[[night]]\ndate = 2026-01-19\n".to_owned(),
            release_id: RELEASE.to_owned(),
            selector: Selector {
                prefectures: vec![Prefecture::from_number(13).expect("Tokyo")],
                kinds: vec![Clinic],
                ..Selector::all()
            },
            max_downloads: 500,
            poll_interval: Duration::from_secs(900),
            status: CampaignStatus::Draft,
        }
    }

    /// Stores campaign `id` (and its release, the first time), created at `created`.
    fn campaign(&self, id: &str, created: Timestamp) -> CampaignRecord {
        if self.store.release(RELEASE).expect("release read").is_none() {
            self.store
                .insert_release(&Self::release(), at(0))
                .expect("the release is stored");
        }
        let campaign = Self::campaign_record(id);
        self.store
            .insert_campaign(&campaign, created)
            .expect("the campaign is stored");
        campaign
    }

    /// A terminal waiting in [`CAMPAIGN`]; returns its device id.
    fn waiting_terminal(&self) -> i64 {
        let device = self.terminal(&self.site(13, Clinic, 1));
        self.campaign(CAMPAIGN, at(0));
        self.store
            .ensure_deployments(CAMPAIGN, &[device.id], at(0))
            .expect("the deployment is added");
        device.id
    }

    /// The one deployment of `device` in [`CAMPAIGN`], as stored.
    fn deployment(&self, device: i64) -> Deployment {
        let open = self.store.open_deployments_of(device).expect("deployments");
        open.into_iter()
            .find(|d| d.campaign_id == CAMPAIGN)
            .expect("the device is in the campaign")
    }

    /// Three sites in [`CAMPAIGN`]: two Tokyo clinics with a terminal and a Canon reader each,
    /// and an Osaka pharmacy with a terminal and a Panasonic reader. The first clinic's terminal
    /// and the pharmacy's reader are downloading; the rest wait.
    fn rollout(&self) -> Rollout {
        let clinic_1 = self.terminal(&self.site(13, Clinic, 1));
        let clinic_2 = self.terminal(&self.site(13, Clinic, 2));
        let pharmacy = self.terminal(&self.site(27, Pharmacy, 3));
        let rollout = Rollout {
            clinic_1_reader: self.reader(&clinic_1, Vendor::Canon).id,
            clinic_2_reader: self.reader(&clinic_2, Vendor::Canon).id,
            pharmacy_reader: self.reader(&pharmacy, Vendor::Panasonic).id,
            clinic_1: clinic_1.id,
            clinic_2: clinic_2.id,
            pharmacy: pharmacy.id,
        };
        self.campaign(CAMPAIGN, at(0));
        self.store
            .ensure_deployments(CAMPAIGN, &rollout.all(), at(0))
            .expect("deployments are added");
        for device in [rollout.clinic_1, rollout.pharmacy_reader] {
            self.store
                .apply_report(&Report {
                    campaign: CAMPAIGN,
                    device,
                    seq: 1,
                    from: Waiting,
                    to: Downloading,
                    bytes: 1024,
                    at: at(1),
                })
                .expect("the report applies");
        }
        rollout
    }
}

/// The device ids of [`Fixture::rollout`]; a terminal is named after its site.
struct Rollout {
    clinic_1: i64,
    clinic_1_reader: i64,
    clinic_2: i64,
    clinic_2_reader: i64,
    pharmacy: i64,
    pharmacy_reader: i64,
}

impl Rollout {
    /// In listing order: by institution code, then device id.
    fn all(&self) -> [i64; 6] {
        [
            self.clinic_1,
            self.clinic_1_reader,
            self.clinic_2,
            self.clinic_2_reader,
            self.pharmacy,
            self.pharmacy_reader,
        ]
    }
}

fn ids(listings: &[DeploymentListing]) -> Vec<i64> {
    listings.iter().map(|l| l.device.id).collect()
}

// --- Migrations ---------------------------------------------------------------------------

fn reopening_a_database_applies_the_schema_once_and_keeps_the_data(b: &Backend) {
    let site = Fixture::new(b).site(13, Clinic, 1);

    let reopened = Fixture::new(b);

    let applied = b.integers("SELECT COUNT(*) FROM refinery_schema_history");
    assert_eq!(
        applied,
        [b.migrations().files().len() as i64],
        "each migration once"
    );
    let stored = reopened.store.institution(site.code).expect("read");
    assert_eq!(stored, Some(site));
}

/// A database the runner before refinery set up (its `schema_migrations`, no refinery table)
/// opens: its record is adopted, nothing it applied runs again, its rows are kept, and what it
/// had not applied is applied.
fn a_database_made_before_refinery_is_adopted_and_migrated_further(b: &Backend) {
    let files = b.migrations().files();
    let (old, new) = files.split_at(files.len() - 1);
    // What the old runner did: each migration's SQL, its file stem in `schema_migrations`.
    let mut sql = String::from(
        "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);\n",
    );
    for (name, text) in old {
        let (version, rest) = name
            .trim_start_matches('V')
            .split_once("__")
            .expect("refinery's name");
        let version: u32 = version.parse().expect("a version");
        sql.push_str(text);
        sql.push_str(&format!(
            "\nINSERT INTO schema_migrations (name, applied_at) \
             VALUES ('{version:04}_{rest}', '2026-01-10T00:00:00.{version:03}Z');\n"
        ));
    }
    sql.push_str("INSERT INTO settings (key, value) VALUES ('made_by', 'the old runner');");
    b.execute_batch(&sql);

    let store = b.open();
    assert_eq!(
        store.setting("made_by").expect("read").as_deref(),
        Some("the old runner")
    );
    let versions: Vec<i64> = (1..=files.len() as i64).collect();
    assert_eq!(
        b.integers("SELECT CAST(version AS BIGINT) FROM refinery_schema_history ORDER BY version"),
        versions
    );
    assert_eq!(
        b.integers("SELECT COUNT(*) FROM schema_migrations"),
        [old.len() as i64],
        "the old record is left as it was"
    );
    assert_eq!(new.len(), 1);
    drop(store);
    // Opened again: nothing to adopt, nothing to apply.
    let _again = b.open();
    assert_eq!(
        b.integers("SELECT COUNT(*) FROM refinery_schema_history"),
        [files.len() as i64]
    );
}

// --- Settings -----------------------------------------------------------------------------

fn a_setting_is_absent_until_set_and_a_second_set_replaces_it(b: &Backend) {
    let fx = Fixture::new(b);
    assert_eq!(fx.store.setting("operator_token").expect("read"), None);

    fx.store.set_setting("operator_token", "a").expect("set");
    fx.store.set_setting("operator_token", "b").expect("set");

    let value = fx.store.setting("operator_token").expect("read");
    assert_eq!(value.as_deref(), Some("b"));
}

// --- Institutions -------------------------------------------------------------------------

fn upserting_an_institution_creates_it_then_updates_it_by_code(b: &Backend) {
    let fx = Fixture::new(b);
    let code = InstitutionCode::parse("0110113719").expect("a valid code");
    let created = Institution {
        code,
        ..Fixture::institution(1, Clinic, 1)
    };
    let renamed = Institution {
        name: "さっぽろ内科クリニック".to_owned(),
        ..created.clone()
    };

    fx.store
        .upsert_institutions(std::slice::from_ref(&created), at(0))
        .expect("created");
    assert_eq!(fx.store.institution(code).expect("read"), Some(created));
    let count = fx
        .store
        .upsert_institutions(std::slice::from_ref(&renamed), at(1))
        .expect("updated");

    assert_eq!(count, 1);
    assert_eq!(fx.store.institution(code).expect("read"), Some(renamed));
    let (_, total) = fx
        .store
        .institutions(&InstitutionFilter {
            limit: 10,
            ..InstitutionFilter::default()
        })
        .expect("listed");
    assert_eq!(total, 1);
}

fn an_unknown_institution_is_none(b: &Backend) {
    let fx = Fixture::new(b);
    let code = InstitutionCode::parse("2714206386").expect("a valid code");
    assert_eq!(fx.store.institution(code).expect("read"), None);
}

fn institutions_are_filtered_by_prefecture_and_kind_and_paged_by_code_with_the_total(b: &Backend) {
    let fx = Fixture::new(b);
    let tokyo_clinics = [1, 2, 3].map(|n| fx.site(13, Clinic, n));
    fx.site(13, Hospital, 4);
    fx.site(27, Clinic, 5);

    let (page, total) = fx
        .store
        .institutions(&InstitutionFilter {
            prefecture: Prefecture::from_number(13),
            kind: Some(Clinic),
            limit: 1,
            offset: 1,
        })
        .expect("listed");

    assert_eq!(total, 3);
    assert_eq!(page, vec![tokyo_clinics[1].clone()]);
}

fn an_unfiltered_listing_counts_every_institution(b: &Backend) {
    let fx = Fixture::new(b);
    let sites = [fx.site(13, Clinic, 1), fx.site(27, Pharmacy, 2)];

    let (all, total) = fx
        .store
        .institutions(&InstitutionFilter {
            limit: 10,
            ..InstitutionFilter::default()
        })
        .expect("listed");

    assert_eq!(total, 2);
    assert_eq!(all, sites);
}

fn an_auto_restart_time_round_trips_and_may_be_absent(b: &Backend) {
    let fx = Fixture::new(b);
    let restarts = Institution {
        auto_restart: Some(time(7, 30, 0, 0)),
        ..Fixture::institution(13, Clinic, 1)
    };
    let never = Fixture::institution(13, Clinic, 2);

    fx.store
        .upsert_institutions(&[restarts.clone(), never.clone()], at(0))
        .expect("stored");

    let read = |code| fx.store.institution(code).expect("read").expect("stored");
    assert_eq!(read(restarts.code).auto_restart, Some(time(7, 30, 0, 0)));
    assert_eq!(read(never.code).auto_restart, None);
}

fn a_phone_number_round_trips_and_may_be_absent(b: &Backend) {
    let fx = Fixture::new(b);
    let with = Institution {
        phone: Some("011-123-4567".to_owned()),
        ..Fixture::institution(1, Clinic, 1)
    };
    let without = Fixture::institution(1, Clinic, 2);
    fx.store
        .upsert_institutions(&[with.clone(), without.clone()], at(0))
        .expect("stored");
    let read = |code| fx.store.institution(code).expect("read").expect("stored");
    assert_eq!(read(with.code).phone.as_deref(), Some("011-123-4567"));
    assert_eq!(read(without.code).phone, None);
    // Listings carry it too (the sites list shows it).
    let (listed, _) = fx
        .store
        .institutions(&InstitutionFilter {
            prefecture: None,
            kind: None,
            limit: 10,
            offset: 0,
        })
        .expect("listed");
    assert_eq!(listed, vec![read(with.code), without.clone()]);
    // A later import without the number clears it.
    fx.store
        .upsert_institutions(
            &[Institution {
                phone: None,
                ..with.clone()
            }],
            at(1),
        )
        .expect("updated");
    assert_eq!(read(with.code).phone, None);
}

fn setting_a_key_of_an_unknown_institution_is_not_found(b: &Backend) {
    let fx = Fixture::new(b);
    let code = InstitutionCode::parse("2714206386").expect("a valid code");

    let err = fx
        .store
        .set_institution_key(code, InstitutionKey::Enrollment, "hash")
        .expect_err("no such institution");

    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

fn enrollment_and_access_key_hashes_round_trip_separately(b: &Backend) {
    let fx = Fixture::new(b);
    let code = fx.site(13, Clinic, 1).code;
    let key = |which| fx.store.institution_key(code, which).expect("read");
    assert_eq!(key(InstitutionKey::Enrollment), None);

    fx.store
        .set_institution_key(code, InstitutionKey::Enrollment, "enrol-hash")
        .expect("set");
    fx.store
        .set_institution_key(code, InstitutionKey::Access, "access-hash")
        .expect("set");

    assert_eq!(
        key(InstitutionKey::Enrollment).as_deref(),
        Some("enrol-hash")
    );
    assert_eq!(key(InstitutionKey::Access).as_deref(), Some("access-hash"));
}

fn a_sign_in_link_signs_in_once_before_it_expires(b: &Backend) {
    let fx = Fixture::new(b);
    let code = fx.site(13, Clinic, 1).code;
    let link = |hash: &'static str, expires: Timestamp| NewSignInLink {
        institution: code,
        token_hash: hash,
        generation: "gen-1",
        created_at: at(0),
        expires_at: expires,
    };
    fx.store
        .create_sign_in_link(&link("hash-a", at(60)))
        .expect("stored");
    fx.store
        .create_sign_in_link(&link("hash-b", at(60)))
        .expect("stored");

    assert_eq!(
        fx.store.redeem_sign_in_link("hash-a", at(1)).expect("read"),
        Some((code, "gen-1".to_owned()))
    );
    assert_eq!(
        fx.store.redeem_sign_in_link("hash-a", at(2)).expect("read"),
        None,
        "used once"
    );
    assert_eq!(
        fx.store
            .redeem_sign_in_link("hash-b", at(60))
            .expect("read"),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        fx.store
            .redeem_sign_in_link("unknown", at(1))
            .expect("read"),
        None
    );
    // A store opened again (a restart, another replica) sees the link used.
    assert_eq!(
        b.open().redeem_sign_in_link("hash-a", at(3)).expect("read"),
        None
    );
}

fn a_sign_in_link_used_by_eight_threads_on_two_stores_signs_in_once(b: &Backend) {
    let fx = Fixture::new(b);
    let code = fx.site(13, Clinic, 1).code;
    fx.store
        .create_sign_in_link(&NewSignInLink {
            institution: code,
            token_hash: "raced",
            generation: "",
            created_at: at(0),
            expires_at: at(60),
        })
        .expect("stored");
    drop(fx);

    let won = on_two_stores(b, 8, |store, _| {
        store
            .redeem_sign_in_link("raced", at(1))
            .expect("redeem call")
            .is_some()
    });

    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

fn limits_at(minute: i64) -> SessionLimits {
    SessionLimits {
        idle_since: at(minute - 30),
        created_since: at(minute - 90),
    }
}

fn a_site_session_lasts_while_used_within_its_limits_and_ends_on_request(b: &Backend) {
    let fx = Fixture::new(b);
    let code = fx.site(13, Clinic, 1).code;
    let session = |id: &'static str, minute: i64| NewSiteSession {
        id_hash: id,
        institution: code,
        generation: "gen",
        csrf: "csrf-1",
        at: at(minute),
        keep: 10,
    };
    fx.store
        .create_site_session(&session("s1", 0), &limits_at(0))
        .expect("stored");
    let resume = |id: &str, minute: i64| {
        fx.store
            .resume_site_session(id, &limits_at(minute), at(minute))
            .expect("read")
    };
    let live = Some(SiteSession {
        institution: code,
        generation: "gen".to_owned(),
        csrf: "csrf-1".to_owned(),
    });
    // Used every 20 minutes, it stays (idle limit 30) until 90 minutes after it began.
    for minute in [20, 40, 60, 80] {
        assert_eq!(resume("s1", minute), live, "at {minute}");
    }
    assert_eq!(resume("s1", 100), None, "past its maximum age");
    // Another replica (a second store) sees the same sessions.
    fx.store
        .create_site_session(&session("s2", 100), &limits_at(100))
        .expect("stored");
    assert!(
        b.open()
            .resume_site_session("s2", &limits_at(110), at(110))
            .expect("read")
            .is_some()
    );
    assert_eq!(resume("s2", 150), None, "idle for 40 minutes");
    fx.store
        .create_site_session(&session("s3", 200), &limits_at(200))
        .expect("stored");
    fx.store.end_site_session("s3").expect("ended");
    assert_eq!(resume("s3", 201), None, "logged out");
    fx.store
        .create_site_session(&session("s4", 300), &limits_at(300))
        .expect("stored");
    assert_eq!(fx.store.end_site_sessions_of(code).expect("ended"), 1);
    assert_eq!(resume("s4", 301), None, "the key was re-issued");
}

fn a_site_keeps_only_its_newest_sessions_and_never_ends_another_sites(b: &Backend) {
    let fx = Fixture::new(b);
    let (one, two) = (fx.site(13, Clinic, 1).code, fx.site(13, Clinic, 2).code);
    let create = |id: &str, code: InstitutionCode, minute: i64| {
        fx.store
            .create_site_session(
                &NewSiteSession {
                    id_hash: id,
                    institution: code,
                    generation: "",
                    csrf: "c",
                    at: at(minute),
                    keep: 3,
                },
                &limits_at(minute),
            )
            .expect("stored");
    };
    create("other", two, 0);
    for i in 0..5 {
        create(&format!("own-{i}"), one, i + 1);
    }
    let live = |id: &str| {
        fx.store
            .resume_site_session(id, &limits_at(10), at(10))
            .expect("read")
            .is_some()
    };
    assert!(!live("own-0") && !live("own-1"), "the oldest two ended");
    assert!(live("own-2") && live("own-3") && live("own-4"));
    assert!(live("other"), "another site's session kept");
}

// --- Devices ------------------------------------------------------------------------------

fn a_card_reader_is_enrolled_under_its_terminal_with_its_vendor(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let terminal = fx.terminal(&site);

    let reader = fx.reader(&terminal, Vendor::Canon);

    assert_eq!(terminal.kind, DeviceKind::Terminal);
    assert_eq!(terminal.parent, None);
    assert_eq!(reader.kind, DeviceKind::CardReader);
    assert_eq!(reader.vendor, Some(Vendor::Canon));
    assert_eq!(reader.parent, Some(terminal.id));
    assert_eq!(reader.institution, site.code);
    assert_ne!(reader.id, terminal.id);
    assert_eq!(fx.store.device(reader.id).expect("read"), Some(reader));
}

fn a_new_device_has_no_versions_and_no_contact(b: &Backend) {
    let fx = Fixture::new(b);
    let terminal = fx.terminal(&fx.site(13, Clinic, 1));

    assert_eq!(terminal.installed, None);
    assert_eq!(terminal.running, None);
    assert_eq!(terminal.last_contact, None);
}

fn enrolling_an_enrolled_serial_again_is_refused_and_the_first_token_keeps_working(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let first = fx.terminal(&site);

    let again = fx.try_enrol(
        &NewDevice {
            token_hash: "new-token-hash".to_owned(),
            ..Fixture::terminal_of(&site)
        },
        &EnrolRules::default(),
        at(1),
    );

    assert_eq!(again, Err(EnrolRefusal::SerialTaken));
    let old_token = Fixture::terminal_of(&site).token_hash;
    assert_eq!(
        fx.store.device_by_token(&old_token).expect("read"),
        Some(first)
    );
    assert_eq!(
        fx.store.device_by_token("new-token-hash").expect("read"),
        None
    );
}

fn a_revoked_device_loses_its_token_readers_and_slot_and_only_then_enrols_again(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let terminal = fx.terminal(&site);
    let reader = fx.reader(&terminal, Vendor::Canon);
    let other = fx.terminal(&fx.site(13, Clinic, 2));
    fx.campaign(CAMPAIGN, at(0));
    assert!(take_slot(&fx, terminal.id));
    assert!(take_slot(&fx, other.id));
    let token = Fixture::terminal_of(&site).token_hash;
    assert!(fx.store.device_by_token(&token).expect("read").is_some());

    let revoked = fx.store.revoke_device(terminal.id, at(1)).expect("revoked");

    assert_eq!(revoked.len(), 2);
    assert!(revoked.contains(&terminal.id) && revoked.contains(&reader.id));
    assert_eq!(fx.store.device_by_token(&token).expect("read"), None);
    let reader_token = Fixture::reader_of(&terminal, Vendor::Canon).token_hash;
    assert_eq!(fx.store.device_by_token(&reader_token).expect("read"), None);
    assert_eq!(holders(&fx, &[terminal.id, other.id], at(1)), [false, true]);
    assert!(fx.store.devices_of(site.code).expect("listed").is_empty());
    assert_eq!(
        fx.store.revoke_device(terminal.id, at(2)).expect("again"),
        Vec::<i64>::new()
    );
    assert!(matches!(
        fx.store.revoke_device(999_999, at(2)),
        Err(StoreError::NotFound(_))
    ));
    // Its serial may be enrolled again, keeping the id, with the new token only.
    let again = fx
        .try_enrol(
            &NewDevice {
                token_hash: "replacement".to_owned(),
                ..Fixture::terminal_of(&site)
            },
            &EnrolRules::default(),
            at(3),
        )
        .expect("enrolled again after revocation");
    assert_eq!(again.id, terminal.id);
    assert_eq!(
        fx.store.device_by_token("replacement").expect("read"),
        Some(again)
    );
    assert_eq!(fx.store.device_by_token(&token).expect("read"), None);
}

fn an_enrolment_key_is_used_up_after_its_uses_and_refused_after_it_expires(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    fx.store
        .set_enrollment_key(site.code, "key-1", at(60), 2)
        .expect("key stored");
    let rules = EnrolRules {
        key_hash: Some("key-1"),
        cap: 0,
        site_cap: 0,
    };
    let terminal = |n: u32| NewDevice {
        serial: format!("T{n}"),
        token_hash: format!("token-{n}"),
        ..Fixture::terminal_of(&site)
    };

    assert!(fx.try_enrol(&terminal(1), &rules, at(0)).is_ok());
    // A refusal for another reason takes no use.
    assert_eq!(
        fx.try_enrol(&terminal(1), &rules, at(0)),
        Err(EnrolRefusal::SerialTaken)
    );
    let wrong = EnrolRules {
        key_hash: Some("not-the-key"),
        cap: 0,
        site_cap: 0,
    };
    assert_eq!(
        fx.try_enrol(&terminal(2), &wrong, at(0)),
        Err(EnrolRefusal::Key)
    );
    assert!(fx.try_enrol(&terminal(2), &rules, at(0)).is_ok());
    assert_eq!(
        fx.try_enrol(&terminal(3), &rules, at(0)),
        Err(EnrolRefusal::Key),
        "two uses, both taken"
    );

    fx.store
        .set_enrollment_key(site.code, "key-2", at(60), 5)
        .expect("new key");
    let rules = EnrolRules {
        key_hash: Some("key-2"),
        cap: 0,
        site_cap: 0,
    };
    assert_eq!(
        fx.try_enrol(&terminal(3), &rules, at(60)),
        Err(EnrolRefusal::Key),
        "expired at its instant"
    );
    assert!(fx.try_enrol(&terminal(3), &rules, at(59)).is_ok());
    assert!(matches!(
        fx.store
            .set_enrollment_key(Fixture::institution(13, Clinic, 99).code, "k", at(60), 1),
        Err(StoreError::NotFound(_))
    ));
}

/// Migration 0011: a key issued before expiry and uses existed (both NULL, as 0004 left it) gets
/// a week from the migration and one use, and is refused after either.
fn a_key_issued_before_expiry_and_uses_existed_gets_a_week_and_one_use(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    fx.store
        .set_enrollment_key(site.code, "old-key", at(60), 5)
        .expect("key stored");
    drop(fx);
    // The key as migration 0004 left one issued before it, and 0011 not yet applied (its
    // columns dropped, its record deleted).
    b.execute_batch(
        "UPDATE institutions SET enrollment_key_expires_at = NULL, enrollment_key_uses_left = NULL;
         ALTER TABLE outbox DROP COLUMN gave_up_at;
         ALTER TABLE operator_outbox DROP COLUMN gave_up_at;
         DELETE FROM refinery_schema_history WHERE version = 11;",
    );
    let fx = Fixture::new(b);
    assert_eq!(
        b.integers("SELECT enrollment_key_uses_left FROM institutions"),
        vec![1]
    );
    let rules = EnrolRules {
        key_hash: Some("old-key"),
        cap: 0,
        site_cap: 0,
    };
    let terminal = |n: u32| NewDevice {
        serial: format!("T{n}"),
        token_hash: format!("token-{n}"),
        ..Fixture::terminal_of(&site)
    };
    let years_later: Timestamp = "2100-01-01T00:00:00Z".parse().expect("instant");
    assert_eq!(
        fx.try_enrol(&terminal(1), &rules, years_later),
        Err(EnrolRefusal::Key),
        "it expires"
    );
    let now = Timestamp::now();
    assert!(fx.try_enrol(&terminal(1), &rules, now).is_ok());
    assert_eq!(
        fx.try_enrol(&terminal(2), &rules, now),
        Err(EnrolRefusal::Key),
        "one use"
    );
}

fn a_site_enrols_at_most_its_cap_of_terminals_and_a_terminal_of_readers(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let cap = |n| EnrolRules {
        key_hash: None,
        cap: n,
        site_cap: 0,
    };
    let terminal = |n: u32| NewDevice {
        serial: format!("T{n}"),
        token_hash: format!("token-{n}"),
        ..Fixture::terminal_of(&site)
    };
    let first = fx.try_enrol(&terminal(1), &cap(2), at(0)).expect("first");
    fx.try_enrol(&terminal(2), &cap(2), at(0)).expect("second");
    assert_eq!(
        fx.try_enrol(&terminal(3), &cap(2), at(0)),
        Err(EnrolRefusal::Full)
    );
    // Another site has its own count.
    let other = fx.site(13, Clinic, 2);
    assert!(
        fx.try_enrol(&Fixture::terminal_of(&other), &cap(2), at(0))
            .is_ok()
    );
    // A revoked terminal no longer counts.
    fx.store.revoke_device(first.id, at(1)).expect("revoked");
    assert!(fx.try_enrol(&terminal(3), &cap(2), at(1)).is_ok());

    let terminal_2 = fx
        .store
        .device_by_token("token-2")
        .expect("read")
        .expect("enrolled");
    let reader = |n: u32| NewDevice {
        serial: format!("R{n}"),
        token_hash: format!("reader-{n}"),
        ..Fixture::reader_of(&terminal_2, Vendor::Canon)
    };
    fx.try_enrol(&reader(1), &cap(1), at(2)).expect("a reader");
    assert_eq!(
        fx.try_enrol(&reader(2), &cap(1), at(2)),
        Err(EnrolRefusal::Full)
    );

    // The site's cap of readers holds across its terminals: terminal 3 may have readers of its
    // own, but not more than the site's two in all.
    let terminal_3 = fx
        .store
        .device_by_token("token-3")
        .expect("read")
        .expect("enrolled");
    let site_cap = EnrolRules {
        key_hash: None,
        cap: 4,
        site_cap: 2,
    };
    let reader_of_3 = |n: u32| NewDevice {
        serial: format!("R3-{n}"),
        token_hash: format!("reader-3-{n}"),
        ..Fixture::reader_of(&terminal_3, Vendor::Canon)
    };
    fx.try_enrol(&reader_of_3(1), &site_cap, at(3))
        .expect("the site's second reader");
    assert_eq!(
        fx.try_enrol(&reader_of_3(2), &site_cap, at(3)),
        Err(EnrolRefusal::Full),
        "a third reader at the site"
    );
}

fn devices_are_listed_by_their_institution(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let terminal = fx.terminal(&site);
    let reader = fx.reader(&terminal, Vendor::Canon);
    fx.terminal(&fx.site(27, Pharmacy, 2));

    let devices = fx.store.devices_of(site.code).expect("listed");

    assert_eq!(devices, vec![terminal, reader]);
}

fn all_devices_come_with_their_institution(b: &Backend) {
    let fx = Fixture::new(b);
    let clinic = fx.site(13, Clinic, 1);
    let pharmacy = fx.site(27, Pharmacy, 2);
    let clinic_terminal = fx.terminal(&clinic);
    let pharmacy_terminal = fx.terminal(&pharmacy);

    let all = fx.store.all_devices().expect("listed");

    assert_eq!(
        all,
        vec![(clinic_terminal, clinic), (pharmacy_terminal, pharmacy)]
    );
}

// --- Contacts -----------------------------------------------------------------------------

fn a_contact_is_buffered_until_flushed_then_writes_last_contact_and_versions(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    let (installed, running) = (version("2026.1.0"), version("2025.12.0"));

    fx.store
        .record_contact(id, Some(&installed), Some(&running), at(5))
        .expect("recorded");
    let before = fx.store.device(id).expect("read").expect("enrolled");
    fx.store.flush().expect("flushed");
    let after = fx.store.device(id).expect("read").expect("enrolled");

    assert_eq!(before.last_contact, None);
    assert_eq!(before.installed, None);
    assert_eq!(after.last_contact, Some(at(5)));
    assert_eq!(after.installed, Some(installed));
    assert_eq!(after.running, Some(running));
}

fn a_contact_without_versions_keeps_the_stored_versions(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    let installed = version("2026.1.0");
    fx.store
        .record_contact(id, Some(&installed), Some(&installed), at(5))
        .expect("recorded");
    fx.store.flush().expect("flushed");

    fx.store
        .record_contact(id, None, None, at(20))
        .expect("recorded");
    fx.store.flush().expect("flushed");

    let device = fx.store.device(id).expect("read").expect("enrolled");
    assert_eq!(device.last_contact, Some(at(20)));
    assert_eq!(device.installed, Some(installed.clone()));
    assert_eq!(device.running, Some(installed));
}

fn versions_reported_before_a_flush_survive_a_later_contact_without_versions(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    let installed = version("2026.1.0");

    fx.store
        .record_contact(id, Some(&installed), Some(&installed), at(5))
        .expect("recorded");
    fx.store
        .record_contact(id, None, None, at(20))
        .expect("recorded");
    fx.store.flush().expect("flushed");

    let device = fx.store.device(id).expect("read").expect("enrolled");
    assert_eq!(device.last_contact, Some(at(20)));
    assert_eq!(device.installed, Some(installed.clone()));
    assert_eq!(device.running, Some(installed));
}

fn listing_the_devices_of_a_site_writes_pending_contacts_first(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let id = fx.terminal(&site).id;

    fx.store
        .record_contact(id, None, None, at(5))
        .expect("recorded");

    let devices = fx.store.devices_of(site.code).expect("listed");
    assert_eq!(devices[0].last_contact, Some(at(5)));
}

// --- Artifacts and releases ---------------------------------------------------------------

fn adding_the_same_artifact_twice_is_harmless_and_keeps_its_size(b: &Backend) {
    let fx = Fixture::new(b);
    let sha = Sha256::of(b"terminal package");

    fx.store.add_artifact(sha, 1234, at(0)).expect("added");
    fx.store
        .add_artifact(sha, 1234, at(1))
        .expect("added again");

    assert_eq!(fx.store.artifact(sha).expect("read"), Some(1234));
    let unknown = Sha256::of(b"never uploaded");
    assert_eq!(fx.store.artifact(unknown).expect("read"), None);
}

fn a_release_round_trips_its_manifest_and_exact_signed_text(b: &Backend) {
    let fx = Fixture::new(b);
    let release = Fixture::release();

    fx.store.insert_release(&release, at(0)).expect("stored");
    let stored = fx.store.release(RELEASE).expect("read").expect("stored");

    assert_eq!(stored.id, release.id);
    assert_eq!(stored.manifest, release.manifest);
    assert_eq!(stored.signed, release.signed);
    assert_eq!(stored.signed.signatures.len(), 1, "the signature survives");
    assert_eq!(
        stored.signed.parse::<Manifest>(Role::Targets),
        Ok(release.manifest)
    );
    assert!(fx.store.release("unknown").expect("read").is_none());
    assert_eq!(
        fx.store.release_manifests().expect("read"),
        vec![(release.id.clone(), release.signed.signed.clone())],
        "the snapshot lists the exact signed text"
    );
    assert_eq!(fx.store.release_count().expect("count"), 1);
}

// --- Campaigns ----------------------------------------------------------------------------

/// What a [`CampaignRecord`] holds, comparable (the record itself is not `PartialEq`).
fn fields(c: &CampaignRecord) -> (&str, &str, &str, &Selector, u32, Duration, CampaignStatus) {
    (
        &c.id,
        &c.schedule_toml,
        &c.release_id,
        &c.selector,
        c.max_downloads,
        c.poll_interval,
        c.status,
    )
}

fn a_campaign_round_trips_its_schedule_release_selector_and_throttle(b: &Backend) {
    let fx = Fixture::new(b);

    let inserted = fx.campaign(CAMPAIGN, at(0));

    let stored = fx.store.campaign(CAMPAIGN).expect("read").expect("stored");
    assert_eq!(fields(&stored), fields(&inserted));
    assert!(fx.store.campaign("unknown").expect("read").is_none());
}

fn a_campaign_needs_a_stored_release(b: &Backend) {
    let fx = Fixture::new(b);

    let err = fx
        .store
        .insert_campaign(&Fixture::campaign_record(CAMPAIGN), at(0))
        .expect_err("the release is unknown");

    assert!(
        matches!(err, StoreError::Sqlite(_) | StoreError::Postgres(_)),
        "{err:?}"
    );
}

fn inserting_a_campaign_id_again_is_a_conflict_and_keeps_the_first(b: &Backend) {
    let fx = Fixture::new(b);
    let first = fx.campaign(CAMPAIGN, at(0));

    let err = fx
        .store
        .insert_campaign(
            &CampaignRecord {
                max_downloads: 1,
                ..Fixture::campaign_record(CAMPAIGN)
            },
            at(1),
        )
        .expect_err("the id is taken");

    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let stored = fx.store.campaign(CAMPAIGN).expect("read").expect("stored");
    assert_eq!(fields(&stored), fields(&first));
}

fn a_campaign_status_change_is_stored(b: &Backend) {
    let fx = Fixture::new(b);
    fx.campaign(CAMPAIGN, at(0));

    fx.store
        .set_campaign_status(CAMPAIGN, CampaignStatus::Active, at(1))
        .expect("changed");

    let stored = fx.store.campaign(CAMPAIGN).expect("read").expect("stored");
    assert_eq!(stored.status, CampaignStatus::Active);
}

fn changing_the_status_of_an_unknown_campaign_is_not_found(b: &Backend) {
    let fx = Fixture::new(b);

    let err = fx
        .store
        .set_campaign_status("unknown", CampaignStatus::Active, at(1))
        .expect_err("no such campaign");

    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

fn campaigns_are_listed_oldest_first(b: &Backend) {
    let fx = Fixture::new(b);
    fx.campaign("b-february", at(60));
    fx.campaign("a-march", at(120));
    fx.campaign("c-january", at(0));

    let campaigns = fx.store.campaigns().expect("listed");

    let ids: Vec<&str> = campaigns.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c-january", "b-february", "a-march"]);
}

fn open_deployments_leave_out_closed_campaigns_and_list_the_newest_campaign_first(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    for (campaign, created) in [("old", at(0)), ("closed", at(30)), ("new", at(60))] {
        fx.campaign(campaign, created);
        fx.store
            .ensure_deployments(campaign, &[id], created)
            .expect("added");
    }
    fx.store
        .set_campaign_status("closed", CampaignStatus::Closed, at(90))
        .expect("closed");

    let open = fx.store.open_deployments_of(id).expect("listed");

    let campaigns: Vec<&str> = open.iter().map(|d| d.campaign_id.as_str()).collect();
    assert_eq!(campaigns, ["new", "old"]);
}

// --- Deployments and state reports --------------------------------------------------------

fn a_device_comes_with_its_open_deployments_by_token_in_one_call(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    let outsider = fx.terminal(&fx.site(13, Clinic, 2));
    for (campaign, created) in [("old", at(0)), ("closed", at(30)), ("new", at(60))] {
        fx.campaign(campaign, created);
        fx.store
            .ensure_deployments(campaign, &[id], created)
            .expect("added");
    }
    fx.store
        .set_campaign_status("closed", CampaignStatus::Closed, at(90))
        .expect("closed");
    let token = |d: &Device| format!("token-of-T-{}", d.institution);
    let device = fx.store.device(id).expect("read").expect("enrolled");

    let (found, open) = fx
        .store
        .device_and_open_deployments(&token(&device))
        .expect("read")
        .expect("known token");
    let (alone, none) = fx
        .store
        .device_and_open_deployments(&token(&outsider))
        .expect("read")
        .expect("known token");

    assert_eq!(
        Some(found),
        fx.store.device_by_token(&token(&device)).expect("read")
    );
    assert_eq!(open, fx.store.open_deployments_of(id).expect("read"));
    let campaigns: Vec<&str> = open.iter().map(|d| d.campaign_id.as_str()).collect();
    assert_eq!(campaigns, ["new", "old"]);
    assert_eq!(alone.id, outsider.id);
    assert!(none.is_empty());
    let unknown = fx.store.device_and_open_deployments("no such token");
    assert_eq!(unknown.expect("read"), None);
}

fn ensuring_deployments_adds_each_device_once_as_waiting(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();

    let added_again = fx
        .store
        .ensure_deployments(CAMPAIGN, &[id], at(1))
        .expect("ensured");

    assert_eq!(added_again, 0);
    let deployment = fx.deployment(id);
    assert_eq!(
        deployment,
        Deployment {
            campaign_id: CAMPAIGN.to_owned(),
            device_id: id,
            state: Waiting,
            bytes: 0,
            last_seq: 0,
            updated_at: at(0),
        }
    );
}

fn ensuring_deployments_counts_only_the_devices_it_adds(b: &Backend) {
    let fx = Fixture::new(b);
    let first = fx.waiting_terminal();
    let second = fx.terminal(&fx.site(13, Clinic, 2)).id;

    let added = fx
        .store
        .ensure_deployments(CAMPAIGN, &[first, second], at(1))
        .expect("ensured");

    assert_eq!(added, 1);
}

fn ensuring_a_deployment_for_an_unknown_device_fails_and_adds_nothing(b: &Backend) {
    let fx = Fixture::new(b);
    let known = fx.terminal(&fx.site(13, Clinic, 1)).id;
    fx.campaign(CAMPAIGN, at(0));

    fx.store
        .ensure_deployments(CAMPAIGN, &[known, known + 100], at(0))
        .expect_err("the second device does not exist");

    assert!(
        fx.store
            .open_deployments_of(known)
            .expect("read")
            .is_empty()
    );
}

fn a_first_report_from_waiting_to_downloading_is_applied_with_its_bytes(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();

    let outcome = fx
        .store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 4096,
            at: at(3),
        })
        .expect("reported");

    let expected = Deployment {
        campaign_id: CAMPAIGN.to_owned(),
        device_id: id,
        state: Downloading,
        bytes: 4096,
        last_seq: 1,
        updated_at: at(3),
    };
    assert_eq!(outcome, ReportOutcome::Applied(expected.clone()));
    assert_eq!(fx.deployment(id), expected);
}

fn a_repeated_report_is_stale_and_changes_nothing(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();
    fx.store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 4096,
            at: at(3),
        })
        .expect("reported");
    let before = fx.deployment(id);

    let outcome = fx
        .store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 4096,
            at: at(4),
        })
        .expect("reported again");

    assert_eq!(outcome, ReportOutcome::Stale(before.clone()));
    assert_eq!(fx.deployment(id), before);
}

fn a_late_report_with_an_older_seq_is_stale_and_changes_nothing(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();
    fx.store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 4096,
            at: at(3),
        })
        .expect("reported");
    fx.store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 2,
            from: Downloading,
            to: Downloaded,
            bytes: 8192,
            at: at(4),
        })
        .expect("reported");
    let before = fx.deployment(id);

    let outcome = fx
        .store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 4096,
            at: at(5),
        })
        .expect("reported late");

    assert_eq!(outcome, ReportOutcome::Stale(before.clone()));
    assert_eq!(fx.deployment(id), before);
}

fn a_newer_report_from_a_state_the_deployment_is_not_in_is_a_conflict_and_changes_nothing(
    b: &Backend,
) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();

    let err = fx
        .store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: id,
            seq: 1,
            from: Downloaded,
            to: Installing,
            bytes: 0,
            at: at(3),
        })
        .expect_err("the deployment is waiting, not downloaded");

    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(fx.deployment(id).state, Waiting);
    assert_eq!(fx.deployment(id).last_seq, 0);
}

fn a_report_for_a_device_outside_the_campaign_is_not_found(b: &Backend) {
    let fx = Fixture::new(b);
    fx.waiting_terminal();
    let outsider = fx.terminal(&fx.site(13, Clinic, 2)).id;

    let err = fx
        .store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: outsider,
            seq: 1,
            from: Waiting,
            to: Downloading,
            bytes: 0,
            at: at(3),
        })
        .expect_err("no deployment");

    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

// --- Download slots (leases) --------------------------------------------------------------

/// Leases of [`CAMPAIGN`] with at most two slots, taken at minute 0 until minute 10.
fn take_slot(fx: &Fixture, device: i64) -> bool {
    fx.store
        .acquire_lease(CAMPAIGN, device, at(0), at(10), 2)
        .expect("lease call")
}

/// Whether each device holds a slot at `now`, checked against the live count.
fn holders(fx: &Fixture, devices: &[i64], now: Timestamp) -> Vec<bool> {
    let held: Vec<bool> = devices
        .iter()
        .map(|&d| fx.store.has_lease(CAMPAIGN, d, now).expect("read"))
        .collect();
    let live = fx.store.live_leases(CAMPAIGN, now).expect("read");
    let counted = held.iter().filter(|&&h| h).count();
    assert_eq!(
        usize::try_from(live).expect("small count"),
        counted,
        "live_leases and has_lease disagree"
    );
    held
}

fn a_third_device_is_refused_a_slot_while_two_are_held(b: &Backend) {
    let fx = Fixture::new(b);

    let taken = [1, 2, 3].map(|d| take_slot(&fx, d));

    assert_eq!(taken, [true, true, false]);
    assert_eq!(holders(&fx, &[1, 2, 3], at(1)), [true, true, false]);
}

fn the_holder_renews_its_slot_without_taking_a_second_one(b: &Backend) {
    let fx = Fixture::new(b);
    take_slot(&fx, 1);
    take_slot(&fx, 2);

    let renewed = fx
        .store
        .acquire_lease(CAMPAIGN, 1, at(5), at(20), 2)
        .expect("lease call");

    assert!(renewed);
    assert_eq!(holders(&fx, &[1, 2], at(5)), [true, true]);
    assert_eq!(holders(&fx, &[1, 2], at(15)), [true, false]);
}

fn an_expired_slot_is_given_to_a_new_device(b: &Backend) {
    let fx = Fixture::new(b);
    take_slot(&fx, 1);
    fx.store
        .acquire_lease(CAMPAIGN, 2, at(0), at(30), 2)
        .expect("lease call");

    let taken = fx
        .store
        .acquire_lease(CAMPAIGN, 3, at(11), at(21), 2)
        .expect("lease call");

    assert!(taken);
    assert_eq!(holders(&fx, &[1, 2, 3], at(11)), [false, true, true]);
}

fn a_device_whose_slot_expired_queues_like_any_other(b: &Backend) {
    let fx = Fixture::new(b);
    take_slot(&fx, 1);
    fx.store
        .acquire_lease(CAMPAIGN, 2, at(11), at(21), 2)
        .expect("lease call");
    fx.store
        .acquire_lease(CAMPAIGN, 3, at(11), at(21), 2)
        .expect("lease call");

    let renewed = fx
        .store
        .acquire_lease(CAMPAIGN, 1, at(12), at(22), 2)
        .expect("lease call");

    assert!(!renewed);
    assert_eq!(holders(&fx, &[1, 2, 3], at(12)), [false, true, true]);
}

fn a_released_slot_can_be_taken_by_another_device(b: &Backend) {
    let fx = Fixture::new(b);
    take_slot(&fx, 1);
    take_slot(&fx, 2);

    fx.store.release_lease(CAMPAIGN, 1).expect("released");

    assert_eq!(holders(&fx, &[1, 2], at(1)), [false, true]);
    assert!(take_slot(&fx, 3));
    assert_eq!(holders(&fx, &[1, 2, 3], at(1)), [false, true, true]);
}

fn slots_are_counted_per_campaign(b: &Backend) {
    let fx = Fixture::new(b);
    take_slot(&fx, 1);
    take_slot(&fx, 2);

    let other = fx
        .store
        .acquire_lease("another-campaign", 3, at(0), at(10), 2)
        .expect("lease call");

    assert!(other);
    assert_eq!(fx.store.live_leases(CAMPAIGN, at(1)).expect("read"), 2);
}

// --- Progress and listings ----------------------------------------------------------------

fn progress_counts_deployments_by_state_device_prefecture_kind_and_vendor(b: &Backend) {
    use DeviceKind::{CardReader, Terminal};
    let fx = Fixture::new(b);
    fx.rollout();
    let tokyo = Prefecture::from_number(13).expect("Tokyo");
    let osaka = Prefecture::from_number(27).expect("Osaka");
    let row = |state, device, prefecture, kind, vendor, count| ProgressRow {
        state,
        device,
        prefecture,
        kind,
        vendor,
        count,
    };

    let mut progress = fx.store.progress(CAMPAIGN).expect("counted");

    progress.sort_by_key(|r| (r.state, r.device, r.prefecture, r.kind, r.vendor));
    assert_eq!(
        progress,
        [
            row(Waiting, Terminal, tokyo, Clinic, None, 1),
            row(Waiting, Terminal, osaka, Pharmacy, None, 1),
            row(Waiting, CardReader, tokyo, Clinic, Some(Vendor::Canon), 2),
            row(Downloading, Terminal, tokyo, Clinic, None, 1),
            row(
                Downloading,
                CardReader,
                osaka,
                Pharmacy,
                Some(Vendor::Panasonic),
                1
            ),
        ]
    );
    assert_eq!(progress.iter().map(|r| r.count).sum::<u64>(), 6);
}

fn progress_of_an_unknown_campaign_is_empty(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();

    assert!(fx.store.progress("unknown").expect("counted").is_empty());
}

fn deployments_are_filtered_by_state_device_kind_prefecture_institution_kind_and_vendor(
    b: &Backend,
) {
    let fx = Fixture::new(b);
    let r = fx.rollout();
    let list = |filter: DeploymentFilter| {
        let filter = DeploymentFilter {
            limit: 100,
            ..filter
        };
        ids(&fx.store.deployments(CAMPAIGN, &filter).expect("listed"))
    };

    let downloading = list(DeploymentFilter {
        state: Some(Downloading),
        ..DeploymentFilter::default()
    });
    let readers = list(DeploymentFilter {
        device: Some(DeviceKind::CardReader),
        ..DeploymentFilter::default()
    });
    let in_osaka = list(DeploymentFilter {
        prefecture: Prefecture::from_number(27),
        ..DeploymentFilter::default()
    });
    let clinics = list(DeploymentFilter {
        kind: Some(Clinic),
        ..DeploymentFilter::default()
    });
    let canon = list(DeploymentFilter {
        vendor: Some(Vendor::Canon),
        ..DeploymentFilter::default()
    });
    let waiting_tokyo_terminals = list(DeploymentFilter {
        state: Some(Waiting),
        device: Some(DeviceKind::Terminal),
        prefecture: Prefecture::from_number(13),
        ..DeploymentFilter::default()
    });

    assert_eq!(downloading, [r.clinic_1, r.pharmacy_reader]);
    assert_eq!(
        readers,
        [r.clinic_1_reader, r.clinic_2_reader, r.pharmacy_reader]
    );
    assert_eq!(in_osaka, [r.pharmacy, r.pharmacy_reader]);
    assert_eq!(
        clinics,
        [r.clinic_1, r.clinic_1_reader, r.clinic_2, r.clinic_2_reader]
    );
    assert_eq!(canon, [r.clinic_1_reader, r.clinic_2_reader]);
    assert_eq!(waiting_tokyo_terminals, [r.clinic_2]);
}

fn silent_terminals_are_those_not_applied_whose_buffered_or_stored_contact_is_too_old(b: &Backend) {
    let fx = Fixture::new(b);
    let r = fx.rollout();
    for (device, minute) in [
        (r.clinic_1, 0),
        (r.clinic_1_reader, 0),
        (r.clinic_2, 100),
        (r.pharmacy, 0),
    ] {
        fx.store
            .record_contact(device, None, None, at(minute))
            .expect("buffered");
    }
    // clinic_2's older contact was written; its newer one is still in the buffer.
    fx.store.flush().expect("flushed");
    fx.store
        .record_contact(r.clinic_2, None, None, at(200))
        .expect("buffered");
    fx.store
        .apply_report(&Report {
            campaign: CAMPAIGN,
            device: r.pharmacy,
            seq: 1,
            from: Waiting,
            to: DeploymentState::Applied,
            bytes: 0,
            at: at(2),
        })
        .expect("applied");
    let silent = |now: i64, prefecture: Option<u8>| {
        let filter = DeploymentFilter {
            silent: Some(onshi_core::silence::Silence::at(
                at(now),
                SignedDuration::from_mins(30),
            )),
            prefecture: prefecture.and_then(Prefecture::from_number),
            ..DeploymentFilter::default()
        };
        ids(&fx.store.deployments(CAMPAIGN, &filter).expect("listed"))
    };

    // At minute 30 nothing is older than 30 minutes yet; at 31 the contacts of minute 0 are.
    assert_eq!(silent(30, None), Vec::<i64>::new());
    assert_eq!(silent(31, None), [r.clinic_1]);
    // clinic_2's buffered contact (minute 200) counts, not the stored one (minute 100).
    assert_eq!(silent(200, None), [r.clinic_1]);
    assert_eq!(silent(231, None), [r.clinic_1, r.clinic_2]);
    assert_eq!(silent(231, Some(27)), Vec::<i64>::new());
}

fn deployments_are_paged_in_institution_code_then_device_order(b: &Backend) {
    let fx = Fixture::new(b);
    let r = fx.rollout();

    let page = fx
        .store
        .deployments(
            CAMPAIGN,
            &DeploymentFilter {
                limit: 2,
                offset: 2,
                ..DeploymentFilter::default()
            },
        )
        .expect("listed");

    assert_eq!(ids(&page), [r.clinic_2, r.clinic_2_reader]);
}

fn a_deployment_listing_carries_the_site_the_device_and_the_reported_progress(b: &Backend) {
    let fx = Fixture::new(b);
    let r = fx.rollout();
    let filter = DeploymentFilter {
        vendor: Some(Vendor::Panasonic),
        limit: 10,
        ..DeploymentFilter::default()
    };

    let listing = fx.store.deployments(CAMPAIGN, &filter).expect("listed");

    let device = fx.store.device(r.pharmacy_reader).expect("read");
    let site = Fixture::institution(27, Pharmacy, 3);
    assert_eq!(
        listing,
        [DeploymentListing {
            institution: site,
            device: device.expect("enrolled"),
            state: Downloading,
            bytes: 1024,
            updated_at: at(1),
        }]
    );
}

// --- Audit --------------------------------------------------------------------------------

fn the_audit_log_lists_the_newest_entries_first_up_to_the_limit(b: &Backend) {
    let fx = Fixture::new(b);
    let entry = |minute, action: &str| AuditEntry {
        at: at(minute),
        actor: "operator".to_owned(),
        action: action.to_owned(),
        subject: CAMPAIGN.to_owned(),
        detail: String::new(),
    };
    for (minute, action) in [(0, "create"), (1, "start"), (2, "pause")] {
        fx.store.audit(&entry(minute, action)).expect("logged");
    }

    let log = fx.store.audit_log(2).expect("read");

    assert_eq!(log, [entry(2, "pause"), entry(1, "start")]);
}

fn a_report_and_its_audit_line_are_stored_together_and_a_repeat_logs_nothing(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();
    let report = Report {
        campaign: CAMPAIGN,
        device: id,
        seq: 1,
        from: Waiting,
        to: Downloading,
        bytes: 0,
        at: at(3),
    };
    let line = AuditEntry {
        at: at(3),
        actor: format!("device:{id}"),
        action: "state_change".to_owned(),
        subject: format!("{CAMPAIGN}/{id}"),
        detail: "waiting -> downloading".to_owned(),
    };

    let first = fx.store.apply_report_logged(&report, Some(&line));
    let repeat = fx.store.apply_report_logged(&report, Some(&line));
    let conflict = fx.store.apply_report_logged(
        &Report {
            seq: 2,
            from: Downloaded,
            to: Installing,
            ..report
        },
        Some(&line),
    );

    assert!(matches!(first, Ok(ReportOutcome::Applied(_))), "{first:?}");
    assert!(matches!(repeat, Ok(ReportOutcome::Stale(_))), "{repeat:?}");
    assert!(
        matches!(conflict, Err(StoreError::Conflict(_))),
        "{conflict:?}"
    );
    assert_eq!(fx.store.audit_log(10).expect("read"), [line]);
}

// --- Durability ---------------------------------------------------------------------------

fn an_applied_report_survives_reopening_the_database(b: &Backend) {
    let (id, applied) = {
        let fx = Fixture::new(b);
        let id = fx.waiting_terminal();
        let outcome = fx
            .store
            .apply_report(&Report {
                campaign: CAMPAIGN,
                device: id,
                seq: 1,
                from: Waiting,
                to: Downloading,
                bytes: 4096,
                at: at(3),
            })
            .expect("reported");
        (id, outcome)
    };

    let reopened = Fixture::new(b);

    assert_eq!(applied, ReportOutcome::Applied(reopened.deployment(id)));
}

fn flushed_contacts_survive_reopening_the_database(b: &Backend) {
    let id = {
        let fx = Fixture::new(b);
        let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
        fx.store
            .record_contact(id, Some(&version("2026.1.0")), None, at(5))
            .expect("recorded");
        fx.store.flush().expect("flushed");
        id
    };

    let device = Fixture::new(b).store.device(id).expect("read");

    let device = device.expect("enrolled");
    assert_eq!(device.last_contact, Some(at(5)));
    assert_eq!(device.installed, Some(version("2026.1.0")));
}

fn last_contact_is_kept_to_the_minute_but_version_changes_are_never_skipped(b: &Backend) {
    let fx = Fixture::new(b);
    let site = fx.site(13, Clinic, 1);
    let t = fx.terminal(&site);
    let v1 = version("1.0.0");
    let v2 = version("2.0.0");
    let contact_of = |fx: &Fixture| {
        fx.store.flush().expect("flush");
        fx.store.device(t.id).expect("read").expect("device")
    };
    let base: Timestamp = "2026-01-20T00:00:00Z".parse().expect("instant");
    let plus = |secs: i64| base + jiff::SignedDuration::from_secs(secs);
    fx.store
        .record_contact(t.id, Some(&v1), Some(&v1), plus(0))
        .expect("contact");
    assert_eq!(contact_of(&fx).last_contact, Some(plus(0)));
    fx.store
        .record_contact(t.id, Some(&v1), Some(&v1), plus(10))
        .expect("contact");
    assert_eq!(
        contact_of(&fx).last_contact,
        Some(plus(0)),
        "10 s later with nothing new: no write"
    );
    fx.store
        .record_contact(t.id, Some(&v2), Some(&v1), plus(20))
        .expect("contact");
    let d = contact_of(&fx);
    assert_eq!(
        d.installed,
        Some(v2.clone()),
        "a new version is written at once"
    );
    assert_eq!(d.last_contact, Some(plus(20)));
    fx.store
        .record_contact(t.id, None, None, plus(81))
        .expect("contact");
    assert_eq!(contact_of(&fx).last_contact, Some(plus(81)));
}

fn site_facts_count_each_sites_devices_by_what_the_site_must_do(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();
    let facts = fx.store.site_facts(CAMPAIGN).expect("facts");
    assert_eq!(facts.len(), 3);
    let (clinic, f) = &facts[0];
    assert_eq!(clinic.name, "clinic 1");
    assert_eq!(
        *f,
        SiteFacts {
            terminals: 1,
            readers: 1,
            not_received: 2,
            restart_required: 0,
            applied: 0
        }
    );
    let one = fx
        .store
        .site_facts_of(CAMPAIGN, clinic.code)
        .expect("one site");
    assert_eq!(one, *f);
}

fn site_facts_come_page_by_page_in_code_order_as_the_whole_list_does(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();
    // A site with no device in the campaign is covered by a page but not listed.
    fx.site(1, Clinic, 4);
    let whole = fx.store.site_facts(CAMPAIGN).expect("facts");
    let mut paged = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = fx
            .store
            .site_facts_page(CAMPAIGN, after, 2)
            .expect("a page");
        let Some(through) = page.through else { break };
        assert!(page.sites.len() <= 2);
        assert!(page.sites.iter().all(|(i, _)| i.code <= through));
        paged.extend(page.sites);
        after = Some(through);
        pages += 1;
    }
    assert_eq!(pages, 2, "four institutions, two a page");
    assert_eq!(
        paged.iter().map(|(i, f)| (i.code, *f)).collect::<Vec<_>>(),
        whole.iter().map(|(i, f)| (i.code, *f)).collect::<Vec<_>>()
    );
    assert_eq!(paged.len(), 3);
}

fn mails_are_planned_in_batches_once_per_key_and_their_keys_read_by_site_range(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();
    let sites: Vec<_> = fx
        .store
        .site_facts(CAMPAIGN)
        .expect("facts")
        .into_iter()
        .map(|(i, _)| i.code)
        .collect();
    let mail = |code: InstitutionCode, key: &'static str| NewMail {
        campaign: CAMPAIGN,
        institution: code,
        kind: NoticeKind::Announcement,
        key,
        recipient: "it@example.jp",
        subject: "お知らせ",
        body: "本文",
        at: at(0),
    };
    let first = [mail(sites[0], "once"), mail(sites[1], "once")];
    assert_eq!(fx.store.enqueue_mails(&first).expect("planned"), 2);
    let again = [mail(sites[1], "once"), mail(sites[2], "once")];
    assert_eq!(
        fx.store.enqueue_mails(&again).expect("planned"),
        1,
        "the key already planned is left out, the new one added"
    );
    assert_eq!(fx.store.enqueue_mails(&[]).expect("nothing"), 0);
    assert_eq!(fx.store.mail_keys(CAMPAIGN).expect("keys").len(), 3);
    let codes = |after, through| {
        let mut c: Vec<_> = fx
            .store
            .mail_keys_of_sites(CAMPAIGN, after, through)
            .expect("keys")
            .into_iter()
            .map(|(code, _, _)| code)
            .collect();
        c.sort();
        c
    };
    assert_eq!(codes(None, sites[0]), [sites[0]]);
    assert_eq!(codes(Some(sites[0]), sites[2]), [sites[1], sites[2]]);
    assert_eq!(
        codes(Some(sites[2]), sites[2]),
        Vec::<InstitutionCode>::new()
    );
}

fn silent_devices_of_a_site_range_follow_the_silence_rule(b: &Backend) {
    let fx = Fixture::new(b);
    let r = fx.rollout();
    for device in [r.clinic_1, r.clinic_2, r.pharmacy] {
        fx.store
            .record_contact(device, None, None, at(0))
            .expect("buffered");
    }
    let rule = onshi_core::silence::Silence::at(at(31), SignedDuration::from_mins(30));
    let sites: Vec<_> = fx
        .store
        .site_facts(CAMPAIGN)
        .expect("facts")
        .into_iter()
        .map(|(i, _)| i.code)
        .collect();
    let all = fx
        .store
        .silent_of_sites(CAMPAIGN, &rule, None, sites[2])
        .expect("silent");
    assert_eq!(
        all.iter().map(|d| d.institution).collect::<Vec<_>>(),
        sites,
        "each site's terminal, in code order, read after the buffer is flushed"
    );
    assert!(all.iter().all(|d| d.last_contact == at(0)));
    let tail = fx
        .store
        .silent_of_sites(CAMPAIGN, &rule, Some(sites[0]), sites[1])
        .expect("silent");
    assert_eq!(
        tail.iter().map(|d| d.institution).collect::<Vec<_>>(),
        [sites[1]]
    );
    let not_yet = onshi_core::silence::Silence::at(at(30), SignedDuration::from_mins(30));
    assert!(
        fx.store
            .silent_of_sites(CAMPAIGN, &not_yet, None, sites[2])
            .expect("silent")
            .is_empty()
    );
}

/// A mail given up (a permanent refusal, or its last attempt) is never claimed again, counted
/// apart from the sent and pending ones, and keeps why.
fn a_mail_given_up_is_never_claimed_again_and_counted_apart(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();
    let site = Fixture::institution(13, Clinic, 1);
    let mail = |key: &'static str| NewMail {
        campaign: CAMPAIGN,
        institution: site.code,
        kind: NoticeKind::RestartRequired,
        key,
        recipient: "it-1@example.jp",
        subject: "再起動してください",
        body: "本文",
        at: at(0),
    };
    assert!(fx.store.enqueue_mail(&mail("2026-01-20")).expect("plan"));
    assert!(fx.store.enqueue_mail(&mail("2026-01-21")).expect("plan"));
    let claimed = fx.store.claim_mails(at(1), at(11), 10).expect("claim");
    assert_eq!(claimed.len(), 2);
    fx.store
        .mail_given_up(claimed[0].id, "SMTP 550 no such mailbox", at(2))
        .expect("given up");
    fx.store
        .mail_failed(claimed[1].id, "SMTP 451 try later", at(5))
        .expect("failed");
    let s = fx.store.mail_summary().expect("summary");
    assert_eq!((s.sent, s.pending, s.retrying, s.gave_up), (0, 1, 1, 1));
    // Years later only the other one is claimed.
    let later = fx
        .store
        .claim_mails(at(100_000), at(100_010), 10)
        .expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, claimed[1].id);
    let listed = fx.store.mails(Some(site.code), 10).expect("listed");
    let given_up = listed
        .iter()
        .find(|m| m.id == claimed[0].id)
        .expect("listed");
    assert_eq!(given_up.attempts, 1);
    assert_eq!(
        given_up.last_error.as_deref(),
        Some("SMTP 550 no such mailbox")
    );
}

fn a_mail_is_planned_once_per_key_claimed_retried_and_sent_once(b: &Backend) {
    let fx = Fixture::new(b);
    fx.rollout();
    let site = Fixture::institution(13, Clinic, 1);
    let mail = |key: &'static str| NewMail {
        campaign: CAMPAIGN,
        institution: site.code,
        kind: NoticeKind::RestartRequired,
        key,
        recipient: "it-1@example.jp",
        subject: "再起動してください",
        body: "本文",
        at: at(0),
    };
    assert!(fx.store.enqueue_mail(&mail("2026-01-20")).expect("plan"));
    assert!(
        !fx.store
            .enqueue_mail(&mail("2026-01-20"))
            .expect("plan again")
    );
    assert!(
        fx.store
            .enqueue_mail(&mail("2026-01-21"))
            .expect("next day")
    );
    assert_eq!(fx.store.mail_keys(CAMPAIGN).expect("keys").len(), 2);

    // Claimed mails are not claimed again until the claim runs out.
    let claimed = fx.store.claim_mails(at(1), at(11), 1).expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].key, "2026-01-20");
    let rest = fx.store.claim_mails(at(1), at(11), 10).expect("claim rest");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].key, "2026-01-21");
    assert!(
        fx.store
            .claim_mails(at(2), at(12), 10)
            .expect("none left")
            .is_empty()
    );

    fx.store
        .mail_failed(claimed[0].id, "SMTP refused", at(5))
        .expect("failed");
    fx.store.mail_sent(rest[0].id, at(2)).expect("sent");
    let s = fx.store.mail_summary().expect("summary");
    assert_eq!((s.sent, s.pending, s.retrying), (1, 1, 1));
    // The failed one comes back at its retry time, and is sent once.
    assert!(
        fx.store
            .claim_mails(at(4), at(14), 10)
            .expect("early")
            .is_empty()
    );
    let again = fx.store.claim_mails(at(5), at(15), 10).expect("retry");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("SMTP refused"));
    fx.store.mail_sent(again[0].id, at(6)).expect("sent");
    let s = fx.store.mail_summary().expect("summary");
    assert_eq!((s.sent, s.pending, s.retrying), (2, 0, 0));
    assert!(
        fx.store
            .claim_mails(at(60), at(70), 10)
            .expect("all sent")
            .is_empty()
    );
    assert_eq!(fx.store.mails(Some(site.code), 10).expect("list").len(), 2);
}

// --- Several stores on one database (replicas) ---------------------------------------------

/// Runs `work(store, thread)` on `threads` threads spread over two stores opened on the same
/// database, all at once.
fn on_two_stores<T: Send>(
    b: &Backend,
    threads: usize,
    work: impl Fn(&dyn Store, usize) -> T + Sync,
) -> Vec<T> {
    let stores = [b.open(), b.open()];
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, barrier, work) = (&stores[t % 2], &barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    work(store.as_ref(), t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the thread finishes"))
            .collect()
    })
}

fn two_stores_together_never_hand_out_more_slots_than_the_throttle(b: &Backend) {
    // The SQLite store is the one writer of its file and counts its slots in memory; only
    // PostgreSQL is shared by replicas.
    let Backend::Postgres(_) = b else { return };
    Fixture::new(b);
    let max = 7;

    let granted = on_two_stores(b, 8, |store, t| {
        (0..10)
            .filter(|i| {
                let device = i64::try_from(t * 10 + i).expect("small id");
                store
                    .acquire_lease(CAMPAIGN, device, at(0), at(10), max)
                    .expect("lease call")
            })
            .count()
    });

    assert_eq!(granted.iter().sum::<usize>(), 7);
    assert_eq!(b.open().live_leases(CAMPAIGN, at(1)).expect("read"), 7);
}

fn the_same_report_through_two_stores_at_once_applies_once(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();

    let outcomes = on_two_stores(b, 8, |store, _| {
        store
            .apply_report(&Report {
                campaign: CAMPAIGN,
                device: id,
                seq: 1,
                from: Waiting,
                to: Downloading,
                bytes: 4096,
                at: at(3),
            })
            .expect("reported")
    });

    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, ReportOutcome::Applied(_)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert_eq!(fx.deployment(id).state, Downloading);
}

fn reports_in_order_through_alternating_stores_end_in_the_last_state(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.waiting_terminal();
    let stores = [b.open(), b.open()];
    let steps = [
        (Waiting, Downloading),
        (Downloading, Downloaded),
        (Downloaded, Installing),
    ];

    for (seq, (from, to)) in (1..).zip(steps) {
        for store in &stores {
            // Every report arrives at both replicas (an agent retrying after a timeout).
            store
                .apply_report(&Report {
                    campaign: CAMPAIGN,
                    device: id,
                    seq,
                    from,
                    to,
                    bytes: 0,
                    at: at(seq),
                })
                .expect("reported");
        }
    }

    let d = fx.deployment(id);
    assert_eq!((d.state, d.last_seq), (Installing, 3));
}

fn a_contact_flushed_late_by_one_store_keeps_the_newer_versions_another_wrote(b: &Backend) {
    let fx = Fixture::new(b);
    let id = fx.terminal(&fx.site(13, Clinic, 1)).id;
    let (late, prompt) = (b.open(), b.open());
    late.record_contact(id, Some(&version("1.0.0")), Some(&version("1.0.0")), at(5))
        .expect("recorded");
    prompt
        .record_contact(id, Some(&version("2.0.0")), Some(&version("1.0.0")), at(10))
        .expect("recorded");
    prompt.flush().expect("flushed");

    late.flush().expect("flushed late");

    let device = fx.store.device(id).expect("read").expect("enrolled");
    assert_eq!(device.last_contact, Some(at(10)));
    assert_eq!(device.installed, Some(version("2.0.0")));
}

fn audit_numbers_have_no_gaps_when_two_stores_write_at_once(b: &Backend) {
    Fixture::new(b);

    on_two_stores(b, 6, |store, t| {
        for i in 0..20 {
            store
                .audit(&AuditEntry {
                    at: at(i),
                    actor: format!("replica-{}", t % 2),
                    action: "test".to_owned(),
                    subject: format!("{t}/{i}"),
                    detail: String::new(),
                })
                .expect("logged");
        }
    });

    let ids = b.integers("SELECT id FROM audit ORDER BY id");
    assert_eq!(ids, (1..=120).collect::<Vec<i64>>());
}

// --- The queue for slots (appointments) ---------------------------------------------------

/// A night window around the suite's instants (`at(0)` .. ), closing after a day.
fn queue_window() -> onshi_core::appointment::Window {
    onshi_core::appointment::Window {
        opened_at: at(0),
        closes_at: Some(at(24 * 60)),
        next_opening: Some(at(48 * 60)),
        grace: onshi_core::appointment::GRACE,
    }
}

/// Device `device` asks for one of `max` slots of [`CAMPAIGN`] at minute `minute`.
fn ask_turn(store: &dyn Store, device: i64, minute: i64, max: u32) -> Turn {
    store
        .take_turn(&TurnAsk {
            campaign: CAMPAIGN,
            device,
            now: at(minute),
            expires: at(minute + 10),
            max,
            window: queue_window(),
            jitter: 0.5,
        })
        .expect("turn")
}

fn refused_devices_get_appointments_in_arrival_order_and_a_freed_slot_goes_to_the_first(
    b: &Backend,
) {
    let fx = Fixture::new(b);
    let store = fx.store.as_ref();
    assert_eq!(ask_turn(store, 1, 0, 1), Turn::Slot);
    let (second, third) = (ask_turn(store, 2, 1, 1), ask_turn(store, 3, 1, 1));

    let (
        Turn::Wait {
            position: 0,
            at: a2,
        },
        Turn::Wait {
            position: 1,
            at: a3,
        },
    ) = (second, third)
    else {
        panic!("2 and 3 wait in arrival order: {second:?} {third:?}");
    };
    assert!(at(1) < a2 && a2 <= a3, "{a2} {a3}");
    assert_eq!(
        store.queue_place(CAMPAIGN, 3).expect("place").map(|p| p.0),
        Some(1)
    );
    store.release_lease(CAMPAIGN, 1).expect("released");
    assert!(matches!(
        ask_turn(store, 3, 2, 1),
        Turn::Wait { position: 1, .. }
    ));
    assert_eq!(ask_turn(store, 2, 2, 1), Turn::Slot);
    assert_eq!(store.live_leases(CAMPAIGN, at(2)).expect("live"), 1);
    assert_eq!(store.queue_place(CAMPAIGN, 2).expect("place"), None);
}

fn two_stores_on_one_database_share_one_queue(b: &Backend) {
    // Only PostgreSQL is shared by replicas; the SQLite store is the one writer of its file.
    let Backend::Postgres(_) = b else { return };
    Fixture::new(b);
    let (a, other) = (b.open(), b.open());
    assert_eq!(ask_turn(a.as_ref(), 1, 0, 1), Turn::Slot);
    // 2 queues through one replica, 3 through the other: one queue, in arrival order.
    assert!(matches!(
        ask_turn(a.as_ref(), 2, 1, 1),
        Turn::Wait { position: 0, .. }
    ));
    assert!(matches!(
        ask_turn(other.as_ref(), 3, 1, 1),
        Turn::Wait { position: 1, .. }
    ));
    assert_eq!(
        a.queue_place(CAMPAIGN, 3).expect("place").map(|p| p.0),
        Some(1)
    );
    // A slot given back through one replica is reserved for the head of the shared queue: 3
    // asking first through the other replica waits, 2 takes it through either.
    a.release_lease(CAMPAIGN, 1).expect("released");
    assert!(matches!(
        ask_turn(other.as_ref(), 3, 2, 1),
        Turn::Wait { position: 1, .. }
    ));
    assert_eq!(ask_turn(other.as_ref(), 2, 2, 1), Turn::Slot);
    assert_eq!(a.live_leases(CAMPAIGN, at(2)).expect("live"), 1);
    assert_eq!(
        other.queue_place(CAMPAIGN, 3).expect("place").map(|p| p.0),
        Some(0)
    );
}

fn two_stores_at_once_admit_no_more_than_the_free_slots_from_the_queue(b: &Backend) {
    let Backend::Postgres(_) = b else { return };
    Fixture::new(b);
    let max = 5;
    // Every device asks through either replica at once, again and again: never more slots than
    // the throttle, and every slot taken.
    let slots = on_two_stores(b, 8, |store, t| {
        (0..6)
            .filter(|i| {
                let device = i64::try_from(t * 10 + i).expect("small id");
                ask_turn(store, device, 0, max) == Turn::Slot
            })
            .count()
    });
    // Never more slots than the throttle (a device refused while another thread of its replica
    // held the campaign's lock is told to come back within seconds)...
    let granted = slots.iter().sum::<usize>();
    assert!((1..=5).contains(&granted), "{granted}");
    // ...and the slots left are taken by the devices coming back, at the head first.
    let store = b.open();
    let holders = (0..80)
        .filter(|&d| ask_turn(store.as_ref(), d, 0, max) == Turn::Slot)
        .count();
    assert_eq!(holders, 5, "the slots held (renewed) and taken");
    assert_eq!(store.live_leases(CAMPAIGN, at(0)).expect("read"), 5);
}

/// PostgreSQL: while another thread of the replica holds the campaign's lock, a device with
/// fewer ahead of it than there are free slots waits for the lock and takes a slot; one further
/// back is answered at once. (Refused for the lock alone, the head was sent away again and
/// again while the lock answered the devices behind it, and the slots stood idle.)
fn the_head_waits_for_a_busy_lock_and_takes_a_free_slot_while_the_rest_are_answered_at_once(
    b: &Backend,
) {
    let Backend::Postgres(schema) = b else { return };
    Fixture::new(b);
    let store = PostgresStore::open(&schema.url).expect("the database opens");
    let max = 2;
    assert_eq!(ask_turn(&store, 1, 0, max), Turn::Slot);
    assert_eq!(ask_turn(&store, 2, 0, max), Turn::Slot);
    assert!(matches!(
        ask_turn(&store, 3, 1, max),
        Turn::Wait { position: 0, .. }
    ));
    assert!(matches!(
        ask_turn(&store, 4, 1, max),
        Turn::Wait { position: 1, .. }
    ));
    store.release_lease(CAMPAIGN, 1).expect("given back");
    // One slot free: device 3 (none ahead) is admitted whoever holds the lock; device 4 (one
    // ahead, one slot free) is not.
    let lock = store.hold_turns();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let behind = tx.clone();
        let store = &store;
        scope.spawn(move || behind.send((4, ask_turn(store, 4, 1, max))));
        let answer = rx.recv_timeout(NOTICE_BOUND).expect("answered at once");
        assert!(
            matches!(answer, (4, Turn::Wait { position: 1, .. })),
            "{answer:?}"
        );
        scope.spawn(move || tx.send((3, ask_turn(store, 3, 1, max))));
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the head waits for the lock"
        );
        drop(lock);
        assert_eq!(
            rx.recv_timeout(NOTICE_BOUND).expect("answered"),
            (3, Turn::Slot)
        );
    });
    assert_eq!(store.live_leases(CAMPAIGN, at(1)).expect("read"), 2);
}

// --- Each replica's cache (PostgreSQL only) --------------------------------------------------
//
// A PostgreSQL replica answers a check-in's look-ups from memory while its listener is
// connected; a write through another replica reaches it by NOTIFY. SQLite has one writer per
// file, so these do not apply to it.

/// How long a notice may take to reach another replica in these tests.
const NOTICE_BOUND: Duration = Duration::from_secs(5);

/// Waits until `done` holds, at most [`NOTICE_BOUND`]; answers whether it did.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + NOTICE_BOUND;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

mod replica_cache {
    use super::*;

    fn url(b: &Backend) -> &str {
        match b {
            Backend::Postgres(s) => &s.url,
            Backend::Sqlite(_) => unreachable!("PostgreSQL only"),
        }
    }

    fn replica(b: &Backend) -> PostgresStore {
        let store = PostgresStore::open(url(b)).expect("the database opens");
        assert!(
            eventually(|| store.reads_from_memory()),
            "the listener connects"
        );
        store
    }

    fn token(device: &NewDevice) -> String {
        device.token_hash.clone()
    }

    #[test]
    fn a_token_revoked_through_one_replica_stops_working_on_the_other() {
        let Some(b) = Backend::postgres() else { return };
        let fx = Fixture::new(&b);
        let site = fx.site(13, Clinic, 1);
        let terminal = Fixture::terminal_of(&site);
        let id = fx.enrol(&terminal).id;
        let other = replica(&b);
        let old = token(&terminal);
        assert_eq!(
            other.device_by_token(&old).expect("read").map(|d| d.id),
            Some(id)
        );
        assert_eq!(
            other.device_by_token(&old).expect("cached").map(|d| d.id),
            Some(id)
        );

        fx.store.revoke_device(id, at(1)).expect("revoked");

        assert!(
            eventually(|| other.device_by_token(&old).expect("read").is_none()),
            "the revoked token still works on the other replica"
        );
        assert!(other.reads_from_memory());
    }

    #[test]
    fn a_report_through_one_replica_reaches_the_others_open_deployments() {
        let Some(b) = Backend::postgres() else { return };
        let fx = Fixture::new(&b);
        let id = fx.waiting_terminal();
        let other = replica(&b);
        let state = |s: &PostgresStore| {
            s.open_deployments_of(id)
                .expect("read")
                .first()
                .map(|d| d.state)
        };
        assert_eq!(state(&other), Some(Waiting));
        assert_eq!(state(&other), Some(Waiting), "from memory");

        fx.store
            .apply_report(&Report {
                campaign: CAMPAIGN,
                device: id,
                seq: 1,
                from: Waiting,
                to: Downloading,
                bytes: 4096,
                at: at(3),
            })
            .expect("reported");
        assert!(eventually(|| state(&other) == Some(Downloading)));

        // Closing the campaign closes its deployments on every replica.
        fx.store
            .set_campaign_status(CAMPAIGN, CampaignStatus::Closed, at(4))
            .expect("closed");
        assert!(eventually(|| state(&other).is_none()));
    }

    #[test]
    fn a_deployment_added_through_one_replica_reaches_the_others_check_in() {
        let Some(b) = Backend::postgres() else { return };
        let fx = Fixture::new(&b);
        let site = fx.site(13, Clinic, 1);
        let terminal = Fixture::terminal_of(&site);
        let id = fx.enrol(&terminal).id;
        fx.campaign(CAMPAIGN, at(0));
        let other = replica(&b);
        let open = |s: &PostgresStore| {
            s.device_and_open_deployments(&token(&terminal))
                .expect("read")
                .map(|(_, open)| open.len())
        };
        assert_eq!(open(&other), Some(0));
        assert_eq!(open(&other), Some(0), "from memory");

        fx.store
            .ensure_deployments(CAMPAIGN, &[id], at(1))
            .expect("added");

        assert!(eventually(|| open(&other) == Some(1)));
    }

    #[test]
    fn a_replica_that_lost_its_listener_reads_the_database_until_the_listener_is_back() {
        let Some(b) = Backend::postgres() else { return };
        let fx = Fixture::new(&b);
        let site = fx.site(13, Clinic, 1);
        let mut terminal = Fixture::terminal_of(&site);
        let id = fx.enrol(&terminal).id;
        let other = replica(&b);
        let first = token(&terminal);
        assert_eq!(
            other.device_by_token(&first).expect("read").map(|d| d.id),
            Some(id)
        );

        // Cut the other replica's listener and keep it away.
        other.hold_listener(true);
        let Backend::Postgres(schema) = &b else {
            unreachable!("PostgreSQL only")
        };
        let cut = schema.query_i64(&format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = '{}'",
            other.listener_name()
        ));
        assert_eq!(cut, vec![1]);
        assert!(
            eventually(|| !other.reads_from_memory()),
            "the loss is noticed"
        );

        // A change it cannot be told about is still seen: it reads the database. (A token is
        // replaced only by enrolling a revoked device again.)
        fx.store.revoke_device(id, at(1)).expect("revoked");
        terminal.token_hash = "second token".to_owned();
        fx.enrol(&terminal);
        assert_eq!(other.device_by_token(&first).expect("read"), None);
        assert_eq!(
            other
                .device_by_token("second token")
                .expect("read")
                .map(|d| d.id),
            Some(id)
        );
        assert!(!other.reads_from_memory());

        // Back: from memory again, and told of changes again.
        other.hold_listener(false);
        assert!(
            eventually(|| other.reads_from_memory()),
            "the listener is back"
        );
        assert_eq!(
            other
                .device_by_token("second token")
                .expect("read")
                .map(|d| d.id),
            Some(id)
        );
        fx.store.revoke_device(id, at(2)).expect("revoked");
        terminal.token_hash = "third token".to_owned();
        fx.enrol(&terminal);
        assert!(eventually(|| other
            .device_by_token("second token")
            .expect("read")
            .is_none()));
    }
}

/// Every function above, as a test on each backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Backend::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(backend) = super::Backend::postgres() {
                        super::$name(&backend);
                    }
                }
            )*
        }
    };
}

suite! {
    a_phone_number_round_trips_and_may_be_absent,
    a_site_session_lasts_while_used_within_its_limits_and_ends_on_request,
    a_site_keeps_only_its_newest_sessions_and_never_ends_another_sites,
    a_sign_in_link_signs_in_once_before_it_expires,
    a_sign_in_link_used_by_eight_threads_on_two_stores_signs_in_once,
    waves_start_once_and_keep_their_sites,
    a_wave_change_is_compare_and_set_with_its_status_audit_and_one_mail,
    wave_health_counts_each_wave_with_unassigned_sites_in_the_last,
    wave_health_follows_every_change_after_the_sites_are_dealt,
    a_rollback_closes_the_campaign_and_opens_one_for_its_devices_only,
    operator_mails_are_claimed_once_and_marked_sent,
    reopening_a_database_applies_the_schema_once_and_keeps_the_data,
    a_database_made_before_refinery_is_adopted_and_migrated_further,
    a_setting_is_absent_until_set_and_a_second_set_replaces_it,
    upserting_an_institution_creates_it_then_updates_it_by_code,
    an_unknown_institution_is_none,
    institutions_are_filtered_by_prefecture_and_kind_and_paged_by_code_with_the_total,
    an_unfiltered_listing_counts_every_institution,
    an_auto_restart_time_round_trips_and_may_be_absent,
    setting_a_key_of_an_unknown_institution_is_not_found,
    enrollment_and_access_key_hashes_round_trip_separately,
    a_card_reader_is_enrolled_under_its_terminal_with_its_vendor,
    a_new_device_has_no_versions_and_no_contact,
    enrolling_an_enrolled_serial_again_is_refused_and_the_first_token_keeps_working,
    a_revoked_device_loses_its_token_readers_and_slot_and_only_then_enrols_again,
    an_enrolment_key_is_used_up_after_its_uses_and_refused_after_it_expires,
    a_key_issued_before_expiry_and_uses_existed_gets_a_week_and_one_use,
    a_site_enrols_at_most_its_cap_of_terminals_and_a_terminal_of_readers,
    devices_are_listed_by_their_institution,
    all_devices_come_with_their_institution,
    a_contact_is_buffered_until_flushed_then_writes_last_contact_and_versions,
    a_contact_without_versions_keeps_the_stored_versions,
    versions_reported_before_a_flush_survive_a_later_contact_without_versions,
    listing_the_devices_of_a_site_writes_pending_contacts_first,
    adding_the_same_artifact_twice_is_harmless_and_keeps_its_size,
    a_release_round_trips_its_manifest_and_exact_signed_text,
    a_campaign_round_trips_its_schedule_release_selector_and_throttle,
    a_campaign_needs_a_stored_release,
    inserting_a_campaign_id_again_is_a_conflict_and_keeps_the_first,
    a_campaign_status_change_is_stored,
    changing_the_status_of_an_unknown_campaign_is_not_found,
    campaigns_are_listed_oldest_first,
    open_deployments_leave_out_closed_campaigns_and_list_the_newest_campaign_first,
    ensuring_deployments_adds_each_device_once_as_waiting,
    ensuring_deployments_counts_only_the_devices_it_adds,
    ensuring_a_deployment_for_an_unknown_device_fails_and_adds_nothing,
    a_first_report_from_waiting_to_downloading_is_applied_with_its_bytes,
    a_repeated_report_is_stale_and_changes_nothing,
    a_late_report_with_an_older_seq_is_stale_and_changes_nothing,
    a_newer_report_from_a_state_the_deployment_is_not_in_is_a_conflict_and_changes_nothing,
    a_report_for_a_device_outside_the_campaign_is_not_found,
    a_third_device_is_refused_a_slot_while_two_are_held,
    the_holder_renews_its_slot_without_taking_a_second_one,
    an_expired_slot_is_given_to_a_new_device,
    a_device_whose_slot_expired_queues_like_any_other,
    a_released_slot_can_be_taken_by_another_device,
    slots_are_counted_per_campaign,
    progress_counts_deployments_by_state_device_prefecture_kind_and_vendor,
    progress_of_an_unknown_campaign_is_empty,
    deployments_are_filtered_by_state_device_kind_prefecture_institution_kind_and_vendor,
    deployments_are_paged_in_institution_code_then_device_order,
    silent_terminals_are_those_not_applied_whose_buffered_or_stored_contact_is_too_old,
    a_deployment_listing_carries_the_site_the_device_and_the_reported_progress,
    the_audit_log_lists_the_newest_entries_first_up_to_the_limit,
    an_applied_report_survives_reopening_the_database,
    flushed_contacts_survive_reopening_the_database,
    last_contact_is_kept_to_the_minute_but_version_changes_are_never_skipped,
    two_stores_together_never_hand_out_more_slots_than_the_throttle,
    two_stores_on_one_database_share_one_queue,
    two_stores_at_once_admit_no_more_than_the_free_slots_from_the_queue,
    the_head_waits_for_a_busy_lock_and_takes_a_free_slot_while_the_rest_are_answered_at_once,
    the_same_report_through_two_stores_at_once_applies_once,
    reports_in_order_through_alternating_stores_end_in_the_last_state,
    audit_numbers_have_no_gaps_when_two_stores_write_at_once,
    a_contact_flushed_late_by_one_store_keeps_the_newer_versions_another_wrote,
    a_report_and_its_audit_line_are_stored_together_and_a_repeat_logs_nothing,
    a_device_comes_with_its_open_deployments_by_token_in_one_call,
    site_facts_count_each_sites_devices_by_what_the_site_must_do,
    a_mail_is_planned_once_per_key_claimed_retried_and_sent_once,
    a_mail_given_up_is_never_claimed_again_and_counted_apart,
    site_facts_come_page_by_page_in_code_order_as_the_whole_list_does,
    mails_are_planned_in_batches_once_per_key_and_their_keys_read_by_site_range,
    silent_devices_of_a_site_range_follow_the_silence_rule,
    refused_devices_get_appointments_in_arrival_order_and_a_freed_slot_goes_to_the_first,
}
