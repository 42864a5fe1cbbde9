//! Waves with health gates (issue 20), with real agents (the `onshi-agent` library) on a
//! simulated clock: a release whose self-check fails after the restart is held by the first
//! wave's gate — nobody outside that wave is offered it, the operator is mailed once — and a
//! healthy release passes every gate and reaches the whole fleet inside the windows; and a
//! held release is rolled back (切り戻し): the previous packages, signed again under a higher
//! version, reach only the first wave's terminals that had the bad one, inside the windows.
//!
//! On SQLite by default; with `ONSHI_TEST_DATABASE=postgres` the faulty release runs on two
//! replicas sharing one PostgreSQL schema, and the hold is seen by both.

use std::sync::Arc;
use std::time::Duration;

use onshi_agent::{Agent, Client, Enrollment, Options, Pace, StateDir};
use onshi_api::admin::{CampaignView, DeploymentListing, WavesView};
use onshi_core::deployment::DeploymentState as S;
use onshi_core::institution::{InstitutionCode, Prefecture, ScoreTable};
use onshi_core::offer::{Action, CampaignAction, CampaignStatus};
use onshi_core::schedule::PRESET_2026_01;
use onshi_core::waves::Metric;
use onshi_testkit::smtp::{Inbox, smtp_server};
use onshi_testkit::{TestApp, spawn_full, test_database, test_schema, wait_until_within};
use reqwest::Method;
use serde_json::json;

const CAMPAIGN: &str = "2026-01";
const SITES: usize = 12;
/// Simulated seconds per real second.
const SPEED: f64 = 60.0;
const OPERATOR: &str = "rollout-ops@example.jp";

/// Sites over several prefectures, every one with an automatic restart at 05:30.
fn code(i: usize) -> String {
    let prefecture = Prefecture::from_number(u8::try_from(1 + (i * 5) % 47).expect("small"))
        .expect("a prefecture");
    InstitutionCode::from_parts(prefecture, ScoreTable::Medical, 1, 1 + i as u16)
        .expect("valid parts")
        .to_string()
}

/// The 2026-01 schedule with two waves: three sites first, then everyone else; a wave passes
/// once two of its terminals run the new version and an hour of the first night has passed.
fn schedule() -> String {
    format!(
        "{PRESET_2026_01}\n[waves]\nsizes = [3]\nmail_to = \"{OPERATOR}\"\n\
         [waves.gate]\nmin_restarted = 2\nsoak_hours = 1\n"
    )
}

/// Servers (two replicas on PostgreSQL when the tests run there, else one on SQLite) with the
/// sites, a release and the campaign as a draft.
async fn servers(smtp: &str) -> Vec<TestApp> {
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let schema = test_database().map(|url| test_schema(&url));
    let replicas = if schema.is_some() { 2 } else { 1 };
    let mut apps = Vec::new();
    for _ in 0..replicas {
        let url = schema.as_ref().map(|s| s.url.clone());
        apps.push(
            spawn_full(
                "2026-01-19T18:00:00+09:00",
                data.clone(),
                schema.clone(),
                url,
                Some(smtp.to_owned()),
            )
            .await,
        );
    }
    let app = &apps[0];
    let csv: String = std::iter::once("code,name,kind,prefecture,email,auto_restart\n".to_owned())
        .chain((0..SITES).map(|i| {
            let c = code(i);
            format!(
                "{c},段階配信 {i},clinic,{},s{i}@example.invalid,05:30\n",
                &c[..2]
            )
        }))
        .collect();
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/institutions/import")
            .header("content-type", "text/csv")
            .body(csv),
        201,
    )
    .await;
    // Signed offline with the tests' targets key.
    let package = vec![7u8; 64 << 10];
    app.release(
        "r1",
        "2.0.0",
        &[(onshi_core::release::Target::Terminal, package.as_slice())],
    )
    .await;
    app.expect(
        app.admin(Method::POST, "/api/v1/admin/campaigns")
            .json(&json!({
                "schedule": schedule(), "release_id": "r1",
                "throttle": {"max_concurrent_downloads": 50, "poll_interval_seconds": 60}
            })),
        201,
    )
    .await;
    apps
}

/// Every site's terminal enrolled through the agent library (alternating replicas), with
/// `self_check` as its self-check command; the campaign activated; the agents running at
/// [`SPEED`]. Returns the agents' state directories (site index, directory) and the stopper.
struct Fleet {
    _root: tempfile::TempDir,
    dirs: Vec<(usize, StateDir)>,
    stop: tokio::sync::watch::Sender<bool>,
    running: tokio::task::JoinSet<Result<(), onshi_agent::AgentError>>,
}

impl Fleet {
    async fn start(apps: &[TestApp], self_check: &str) -> Self {
        let root = tempfile::tempdir().expect("agents dir");
        let http = reqwest::Client::new();
        let mut dirs = Vec::new();
        for i in 0..SITES {
            let app = &apps[i % apps.len()];
            let key = apps[0].enrollment_key(&code(i)).await;
            let client = Client::with_http(http.clone(), &app.url(""));
            let dir = StateDir::new(root.path().join(code(i)));
            let e = Enrollment {
                institution: code(i),
                enrollment_key: key,
                serial: format!("T{i}"),
                readers: Vec::new(),
                trust_root: onshi_testkit::keys::TestKeys::root(),
                base_version: onshi_core::version::Version::parse("1.0.0").expect("version"),
                auto_restart: None,
                restart_command: None,
                self_check_command: Some(vec![self_check.to_owned()]),
            };
            onshi_agent::enroll(&dir, &client, &e)
                .await
                .expect("enrols");
            dirs.push((i, dir));
        }
        apps[0]
            .expect(apps[0].control(CAMPAIGN, CampaignAction::Activate), 200)
            .await;
        for app in apps {
            app.state.clock.set_speed(SPEED).expect("simulated clock");
        }
        let options = Options {
            pace: Pace {
                speed: SPEED,
                max_sleep: Duration::from_millis(500),
            },
            max_rate: None,
            progress_bar: false,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        for (i, dir) in &dirs {
            let client = Client::with_http(http.clone(), &apps[i % apps.len()].url(""));
            let mut agent = Agent::open(dir.clone(), client, options).expect("agent opens");
            let mut stopped = stopped.clone();
            running.spawn(async move {
                agent
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            });
        }
        Self {
            _root: root,
            dirs,
            stop,
            running,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.running.join_next().await.is_some() {}
    }
}

async fn listing(app: &TestApp) -> Vec<DeploymentListing> {
    listing_of(app, CAMPAIGN).await
}

async fn listing_of(app: &TestApp, campaign: &str) -> Vec<DeploymentListing> {
    app.expect_as(
        app.admin(
            Method::GET,
            &format!("/api/v1/admin/campaigns/{campaign}/devices"),
        ),
        200,
    )
    .await
}

async fn waves(app: &TestApp) -> WavesView {
    app.expect_as(
        app.admin(
            Method::GET,
            &format!("/api/v1/admin/campaigns/{CAMPAIGN}/waves"),
        ),
        200,
    )
    .await
}

async fn campaign(app: &TestApp) -> CampaignView {
    campaign_of(app, CAMPAIGN).await
}

async fn campaign_of(app: &TestApp, id: &str) -> CampaignView {
    app.expect_as(
        app.admin(Method::GET, &format!("/api/v1/admin/campaigns/{id}")),
        200,
    )
    .await
}

/// The site codes of the first wave, as the server dealt them.
async fn first_wave(app: &TestApp) -> Vec<String> {
    let store = app.state.store.clone();
    let sites = tokio::task::spawn_blocking(move || store.wave_sites(CAMPAIGN))
        .await
        .expect("joined")
        .expect("read");
    sites
        .into_iter()
        .filter(|(_, w)| *w == 0)
        .map(|(c, _)| c.to_string())
        .collect()
}

async fn wait_states(
    app: &TestApp,
    what: &str,
    limit: Duration,
    ok: impl Fn(&[DeploymentListing]) -> bool,
) {
    wait_until_within(limit, what, async || ok(&listing(app).await)).await;
}

/// Moves every replica's clock (they share the simulated time).
async fn set_clock(apps: &[TestApp], at: &str) {
    for a in apps {
        a.set_clock(at).await;
    }
}

fn operator_mails(inbox: &Inbox) -> usize {
    inbox
        .mails()
        .iter()
        .filter(|m| m.contains("Message-ID: <operator-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_self_check_fails_is_held_by_the_first_wave_and_the_operator_is_mailed_once()
 {
    let (inbox, smtp) = smtp_server().await;
    let apps = servers(&smtp).await;
    let fleet = Fleet::start(&apps, "false").await;
    let app = &apps[0];
    let canaries = first_wave(app).await;
    assert_eq!(canaries.len(), 3, "{canaries:?}");
    let in_wave = |l: &DeploymentListing| canaries.contains(&l.institution.code.to_string());

    // The first night: the three canaries download and install; nobody else is offered it.
    set_clock(&apps, "2026-01-19T20:00:00+09:00").await;
    wait_states(
        app,
        "the canaries installed",
        Duration::from_secs(90),
        |ls| {
            ls.iter()
                .filter(|l| in_wave(l))
                .all(|l| l.state == S::Installed)
        },
    )
    .await;
    // A terminal outside the wave, asking inside the window, is told nothing to do.
    let (i, outside) = fleet
        .dirs
        .iter()
        .find(|(i, _)| !canaries.contains(&code(*i)))
        .expect("a site outside the first wave");
    let token = outside.load_identity().expect("identity").terminal.token;
    let answer = apps[(i + 1) % apps.len()]
        .checkin(&token, "1.0.0", "1.0.0")
        .await;
    assert_eq!(answer.action, Action::None, "{answer:?}");

    // 05:30 the next morning the canaries restart automatically; their self-check fails.
    set_clock(&apps, "2026-01-20T05:20:00+09:00").await;
    wait_until_within(
        Duration::from_secs(90),
        "the gate held the campaign",
        async || campaign(app).await.status == CampaignStatus::Paused,
    )
    .await;
    // Held for every replica: each reads the pause and the hold from the shared store.
    for a in &apps {
        let view = waves(a).await;
        let hold = view.hold.expect("held by a gate");
        assert_eq!(hold.wave, 0);
        assert_eq!(hold.breach.metric, Metric::Unhealthy);
        assert!(
            view.held_because_ja
                .as_deref()
                .is_some_and(|w| w.starts_with("第1波") && w.contains("自己診断で異常")),
            "{view:?}"
        );
        wait_until_within(
            Duration::from_secs(10),
            "the pause reached the replica",
            async || campaign(a).await.status == CampaignStatus::Paused,
        )
        .await;
    }
    let audit = app.audit().await;
    assert_eq!(audit.matches("campaign_held").count(), 1, "{audit}");

    // The operator is mailed once, in Japanese, with the time in Japan time and the weekday.
    wait_until_within(Duration::from_secs(30), "the operator's mail", async || {
        operator_mails(&inbox) >= 1
    })
    .await;
    // The agents keep checking in and the gates keep judging: a later round, after the next
    // evening's window opened, plans nothing more.
    set_clock(&apps, "2026-01-20T20:00:00+09:00").await;
    let later: jiff::Timestamp = "2026-01-20T20:00:00+09:00".parse().expect("instant");
    wait_states(
        app,
        "every terminal checked in after 20:00",
        Duration::from_secs(60),
        |ls| {
            ls.iter().all(|l| {
                l.device
                    .last_contact
                    .as_deref()
                    .is_some_and(|c| c.parse::<jiff::Timestamp>().is_ok_and(|c| c >= later))
            })
        },
    )
    .await;
    assert_eq!(operator_mails(&inbox), 1);
    let mail = inbox
        .mails()
        .into_iter()
        .find(|m| m.contains("Message-ID: <operator-"))
        .expect("the operator's mail");
    assert!(mail.contains(OPERATOR), "{mail}");

    // Sites outside the first wave were not even told to keep their terminals on.
    for m in inbox.mails() {
        if let Some(id) = m.lines().find(|l| l.starts_with("Message-ID: <notice-")) {
            assert!(canaries.iter().any(|c| id.contains(c.as_str())), "{id}");
        }
    }
    // Nobody outside the first wave got anything, even with the window open again.
    let ls = listing(app).await;
    for l in ls.iter().filter(|l| !in_wave(l)) {
        assert_eq!(
            l.state,
            S::Waiting,
            "{} outside the first wave",
            l.institution.code
        );
    }
    assert_eq!(
        ls.iter()
            .filter(|l| in_wave(l) && l.state == S::Applied)
            .count(),
        3,
        "the canaries run the new version (and failed its self-check)"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_release_passes_every_gate_and_the_whole_fleet_is_done_within_the_windows() {
    let (_inbox, smtp) = smtp_server().await;
    let apps = servers(&smtp).await;
    let fleet = Fleet::start(&apps, "true").await;
    let app = &apps[0];
    let canaries = first_wave(app).await;
    let in_wave = |l: &DeploymentListing| canaries.contains(&l.institution.code.to_string());

    set_clock(&apps, "2026-01-19T20:00:00+09:00").await;
    wait_states(
        app,
        "the canaries installed",
        Duration::from_secs(90),
        |ls| {
            ls.iter()
                .filter(|l| in_wave(l))
                .all(|l| l.state == S::Installed)
        },
    )
    .await;
    assert!(
        listing(app)
            .await
            .iter()
            .filter(|l| !in_wave(l))
            .all(|l| l.state == S::Waiting),
        "the second wave waits for the first one's gate"
    );
    set_clock(&apps, "2026-01-20T05:20:00+09:00").await;
    wait_until_within(
        Duration::from_secs(90),
        "the second wave opened",
        async || waves(app).await.open == 2,
    )
    .await;
    assert!(app.audit().await.contains("wave_opened"));
    assert_eq!(campaign(app).await.status, CampaignStatus::Active);

    // The second night: everyone else; the next morning's automatic restart applies it.
    set_clock(&apps, "2026-01-20T20:00:00+09:00").await;
    wait_states(app, "every site installed", Duration::from_secs(90), |ls| {
        ls.iter()
            .all(|l| matches!(l.state, S::Installed | S::Applied))
    })
    .await;
    set_clock(&apps, "2026-01-21T05:20:00+09:00").await;
    wait_states(app, "every site applied", Duration::from_secs(90), |ls| {
        ls.iter().all(|l| l.state == S::Applied)
    })
    .await;
    let now = app.state.clock.now();
    let catch_up: jiff::Timestamp = "2026-01-31T00:00:00+09:00".parse().expect("instant");
    assert!(now < catch_up, "done at {now}, inside the nights");
    let view = waves(app).await;
    assert!(view.hold.is_none(), "{view:?}");
    assert!(
        view.each
            .iter()
            .all(|w| w.readings.iter().all(|r| !r.crossed)),
        "{view:?}"
    );
    fleet.stop().await;
}

/// The operator's decisions after a hold, over the API with reports sent by hand: widen opens
/// the next wave (the campaign stays paused), resume accepts the held wave's breach and runs
/// the campaign again, each audited; widening past the last wave is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hold_the_operator_widens_and_resumes_and_each_decision_is_audited() {
    use onshi_api::device::{ReportRequest, ReportResponse, SelfCheck};
    use onshi_core::deployment::DeploymentEvent as E;
    let (_inbox, smtp) = smtp_server().await;
    let apps = servers(&smtp).await;
    let app = &apps[0];
    let mut tokens = Vec::new();
    for i in 0..SITES {
        tokens.push((code(i), app.enroll(&code(i), &format!("T{i}")).await));
    }
    app.expect(app.control(CAMPAIGN, CampaignAction::Activate), 200)
        .await;
    let canaries = first_wave(app).await;
    let (_, token) = tokens
        .iter()
        .find(|(c, _)| canaries.contains(c))
        .expect("a canary");
    let version = onshi_core::version::Version::parse("2.0.0").expect("version");
    app.report_steps(
        token,
        &[
            E::DownloadStarted,
            E::DownloadVerified,
            E::InstallStarted,
            E::InstallCompleted,
        ],
    )
    .await;
    let restarted =
        ReportRequest::new(CAMPAIGN, 5, &E::Running(version)).with_self_check(SelfCheck::Failed);
    app.expect_as::<ReportResponse>(app.send_report(token, &restarted), 200)
        .await;
    wait_until_within(
        Duration::from_secs(30),
        "the gate held the campaign",
        async || campaign(app).await.status == CampaignStatus::Paused,
    )
    .await;

    app.expect(app.control(CAMPAIGN, CampaignAction::Widen), 200)
        .await;
    let view = waves(app).await;
    assert_eq!(view.open, 2, "{view:?}");
    assert!(
        view.hold.is_some(),
        "widening does not lift the hold: {view:?}"
    );
    assert_eq!(campaign(app).await.status, CampaignStatus::Paused);
    app.expect_error(
        app.control(CAMPAIGN, CampaignAction::Widen),
        409,
        onshi_api::ErrorCode::InvalidCampaignTransition,
    )
    .await;

    app.expect(app.control(CAMPAIGN, CampaignAction::Resume), 200)
        .await;
    let view = waves(app).await;
    assert!(view.hold.is_none(), "{view:?}");
    assert!(view.each[0].waived, "{view:?}");
    assert_eq!(campaign(app).await.status, CampaignStatus::Active);
    let audit = app.audit().await;
    assert!(audit.contains("campaign_widen"), "{audit}");
    assert!(audit.contains("wave 2 opened by the operator"), "{audit}");
    assert!(audit.contains("campaign_resume"), "{audit}");
    assert!(audit.contains("accepted: wave 1"), "{audit}");
}

/// The version whose self-check fails in [`a_held_release_is_rolled_back_to_the_previous_packages_only_where_it_went`].
const BAD: &str = "2.0.0";

/// A self-check that fails on the bad version and passes on any other, as a real check of a
/// faulty build would: a script in `dir`.
fn self_check_failing_on_bad(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("self-check.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\ntest \"$ONSHI_VERSION\" != \"{BAD}\"\n"),
    )
    .expect("script written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("executable");
    path.to_string_lossy().into_owned()
}

/// The rollback (切り戻し) with real agents: the first wave's gate holds the bad release; the
/// operator signs the previous release's packages again under a higher version (as `onshi
/// release sign --from-release`), and rolls back. Only the first wave's terminals, which had
/// the bad release, are offered it; it downloads only inside the next window, and the next
/// morning's automatic restart runs the previous content under the new version. Nobody else is
/// offered anything, the bad campaign is closed, and the decision is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_release_is_rolled_back_to_the_previous_packages_only_where_it_went() {
    use onshi_core::release::{Manifest, Target};
    use onshi_core::trust::{Role, Signed};
    use onshi_core::waves::RolledBack;
    let (_inbox, smtp) = smtp_server().await;
    let apps = servers(&smtp).await;
    let app = &apps[0];
    // The previous good release, published before this campaign (the agents run its version).
    let good_package = vec![5u8; 64 << 10];
    app.release(
        "r0",
        "1.0.0",
        &[(Target::Terminal, good_package.as_slice())],
    )
    .await;
    let scripts = tempfile::tempdir().expect("scripts dir");
    let fleet = Fleet::start(&apps, &self_check_failing_on_bad(scripts.path())).await;
    let canaries = first_wave(app).await;
    let in_wave = |l: &DeploymentListing| canaries.contains(&l.institution.code.to_string());

    set_clock(&apps, "2026-01-19T20:00:00+09:00").await;
    wait_states(
        app,
        "the canaries installed",
        Duration::from_secs(90),
        |ls| {
            ls.iter()
                .filter(|l| in_wave(l))
                .all(|l| l.state == S::Installed)
        },
    )
    .await;
    set_clock(&apps, "2026-01-20T05:20:00+09:00").await;
    wait_until_within(
        Duration::from_secs(90),
        "the gate held the campaign",
        async || campaign(app).await.status == CampaignStatus::Paused,
    )
    .await;
    assert!(waves(app).await.hold.is_some());

    // The previous release itself cannot roll back: agents refuse an older version.
    let rollback = |release: &str| {
        app.admin(
            Method::POST,
            &format!("/api/v1/admin/campaigns/{CAMPAIGN}/rollback"),
        )
        .json(&json!({ "release_id": release }))
    };
    let refused = app
        .expect_error(rollback("r0"), 400, onshi_api::ErrorCode::InvalidRelease)
        .await;
    assert!(refused.message.contains("--from-release"), "{refused:?}");
    // Signed offline: the previous release's packages (from its manifest) under 2.0.1.
    let previous: Signed = app
        .expect_as(app.admin(Method::GET, "/api/v1/admin/releases/r0"), 200)
        .await;
    let previous: Manifest = previous.parse(Role::Targets).expect("r0's manifest");
    let components: Vec<_> = previous
        .components
        .iter()
        .map(|c| (c.target, c.sha256, c.size))
        .collect();
    app.publish("r0-again", "2.0.1", &components).await;
    let done: RolledBack = app.expect_as(rollback("r0-again"), 201).await;
    assert_eq!(done.campaign, format!("{CAMPAIGN}-rollback"));
    assert_eq!(done.devices, 3, "the three canaries' terminals: {done:?}");
    // Decided once: the campaign is closed for everyone else, and a second ask is refused.
    assert_eq!(campaign(app).await.status, CampaignStatus::Closed);
    app.expect_error(
        rollback("r0-again"),
        409,
        onshi_api::ErrorCode::InvalidCampaignTransition,
    )
    .await;
    let audit = app.audit().await;
    assert_eq!(audit.matches("campaign_rolled_back").count(), 1, "{audit}");
    assert!(audit.contains("r0-again (version 2.0.1"), "{audit}");
    let view = waves(app).await;
    assert!(
        view.rolled_back_ja
            .as_deref()
            .is_some_and(|t| t.contains("切り戻し済み")),
        "{view:?}"
    );
    let rolled: Vec<DeploymentListing> = listing_of(app, &done.campaign).await;
    let mut got: Vec<String> = rolled
        .iter()
        .map(|l| l.institution.code.to_string())
        .collect();
    got.sort();
    let mut expected = canaries.clone();
    expected.sort();
    assert_eq!(got, expected, "offered only to the first wave");

    // Until the next window opens nothing moves: every canary checks in after the decision
    // and is told to wait.
    let decided = app.state.clock.now();
    wait_until_within(
        Duration::from_secs(60),
        "every canary checked in after the rollback",
        async || {
            listing_of(app, &done.campaign).await.iter().all(|l| {
                l.device
                    .last_contact
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|c| c > decided)
            })
        },
    )
    .await;
    assert!(
        listing_of(app, &done.campaign)
            .await
            .iter()
            .all(|l| l.state == S::Waiting)
    );

    // The next night the canaries take it; 05:30 the next morning they restart onto it.
    let opens: jiff::Timestamp = "2026-01-20T20:00:00+09:00".parse().expect("instant");
    let closes: jiff::Timestamp = "2026-01-21T05:00:00+09:00".parse().expect("instant");
    set_clock(&apps, "2026-01-20T20:00:00+09:00").await;
    wait_until_within(
        Duration::from_secs(90),
        "the canaries installed the rollback",
        async || {
            listing_of(app, &done.campaign)
                .await
                .iter()
                .all(|l| l.state == S::Installed)
        },
    )
    .await;
    // Every outside terminal asks inside the window and is offered nothing.
    for (i, dir) in fleet
        .dirs
        .iter()
        .filter(|(i, _)| !canaries.contains(&code(*i)))
    {
        let token = dir.load_identity().expect("identity").terminal.token;
        let answer = apps[(i + 1) % apps.len()]
            .checkin(&token, "1.0.0", "1.0.0")
            .await;
        assert_eq!(answer.action, Action::None, "{answer:?}");
        assert!(answer.campaign.is_none(), "{answer:?}");
    }
    set_clock(&apps, "2026-01-21T05:20:00+09:00").await;
    wait_until_within(
        Duration::from_secs(90),
        "the canaries run the rollback",
        async || {
            listing_of(app, &done.campaign)
                .await
                .iter()
                .all(|l| l.state == S::Applied)
        },
    )
    .await;

    // Every download of the rollback started inside the window after the decision.
    let entries: Vec<onshi_api::admin::AuditEntry> = app
        .expect_as(
            app.admin(Method::GET, "/api/v1/admin/audit?limit=10000"),
            200,
        )
        .await;
    let started: Vec<jiff::Timestamp> = entries
        .iter()
        .filter(|e| {
            e.subject.starts_with(&format!("{}/", done.campaign))
                && e.detail.contains("-> downloading")
        })
        .map(|e| e.at.parse().expect("instant"))
        .collect();
    assert!(started.len() >= 3, "{entries:?}");
    assert!(
        started.iter().all(|t| opens <= *t && *t < closes),
        "{started:?}"
    );

    // On the canaries: the previous content, running under the new version. Outside the wave:
    // nothing installed, the old version running.
    let version = |v: &str| onshi_core::version::Version::parse(v).expect("version");
    for (i, dir) in &fleet.dirs {
        let terminal = onshi_agent::Component::Terminal;
        if canaries.contains(&code(*i)) {
            assert_eq!(dir.running().expect("running"), version("2.0.1"));
            let package = dir.slot(&terminal, &version("2.0.1")).join("package");
            assert_eq!(
                std::fs::read(&package).expect("the slot's package"),
                good_package
            );
        } else {
            assert_eq!(dir.running().expect("running"), version("1.0.0"));
            assert_eq!(
                dir.installed(&terminal).expect("installed"),
                version("1.0.0")
            );
        }
    }
    // The running version a report carries is buffered with the last contact and written by
    // the server's flusher at its pace: wait for it rather than race it.
    let rolled_back = |rows: &[DeploymentListing]| {
        rows.iter()
            .all(|l| l.device.running == Some(version("2.0.1")))
    };
    wait_until_within(
        Duration::from_secs(30),
        "every canary's running version recorded",
        async || rolled_back(&listing_of(app, &done.campaign).await),
    )
    .await;
    let audit = app.audit().await;
    assert_eq!(
        (
            audit.matches("(self-check failed)").count(),
            audit.matches("(self-check passed)").count()
        ),
        (3, 3),
        "the bad version failed its self-check on each canary, the rollback passed: {audit}"
    );
    fleet.stop().await;
}
