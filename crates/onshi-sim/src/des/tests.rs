use onshi_core::deployment::DeploymentState;
use onshi_core::schedule::Campaign;

use super::*;
use crate::report::state_column;
use crate::scenario::preset_campaign;

/// Only clinics, `clinics` of them, with the given TOML laid over the national preset.
fn clinics(clinics: u32, extra: &str) -> Scenario {
    let count = format!("[sites.clinic]\ncount = {clinics}\n");
    let extra = if extra.contains("[sites.clinic]\n") {
        extra.replace("[sites.clinic]\n", &count)
    } else {
        format!("{extra}\n{count}")
    };
    let text = format!(
        "{extra}\n[sites.hospital]\ncount = 0\n[sites.dental]\ncount = 0\n[sites.pharmacy]\ncount = 0\n"
    );
    Scenario::parse(&text, preset_campaign).expect("valid scenario")
}

fn quiet(scenario: &Scenario) -> Outcome {
    run(scenario, scenario.seed, &mut |_| {})
}

/// A slice of the country: every kind, the real schedule, a tenth of a percent of the sites.
fn small_country() -> Scenario {
    Scenario::parse(
        "[distribution]\nmax_concurrent_downloads = 40\negress_gbps = 0.08\n\
         [sites.hospital]\ncount = 80\n[sites.clinic]\ncount = 900\n\
         [sites.dental]\ncount = 700\n[sites.pharmacy]\ncount = 600\n",
        preset_campaign,
    )
    .expect("valid scenario")
}

#[test]
fn device_counts_are_conserved_every_hour() {
    let o = quiet(&small_country());
    let devices = o.summary.devices;
    assert_eq!(o.hourly.states.len(), 21 * 24);
    for (h, row) in o.hourly.states.iter().enumerate() {
        let total: u64 = row.iter().map(|n| u64::from(*n)).sum();
        assert_eq!(total, devices, "hour {h}");
    }
    let at_end: u64 = o.summary.devices_at_end.values().sum();
    assert_eq!(at_end, devices);
    assert_eq!(o.summary.illegal_transitions, 0);
    let s = &o.summary.deadline;
    assert_eq!(
        s.sites_by_last_night + s.sites_in_catch_up + s.sites_never,
        o.summary.sites
    );
}

#[test]
fn nothing_downloads_outside_a_window() {
    let sc = small_country();
    let o = quiet(&sc);
    assert_eq!(o.summary.downloads_started_outside_windows, 0);
    let mut outside_hours = 0;
    for h in 0..o.hourly.len() {
        // Whether any minute of the hour is inside the schedule.
        let open = (0..60).any(|m| {
            let at = o.calendar.instant(h as u32 * 3600 + m * 60);
            sc.campaign.is_distributing(at)
        });
        if !open {
            outside_hours += 1;
            assert_eq!(
                o.hourly.bytes[h], 0.0,
                "hour {h}: bytes outside the windows"
            );
            assert_eq!(o.hourly.downloads_peak[h], 0, "hour {h}");
            assert_eq!(o.hourly.states[h][1], 0, "hour {h}: a device downloading");
        }
    }
    // The nights are 9 of 24 hours for 11 nights, then catch-up: most early hours are closed.
    assert!(outside_hours > 150, "{outside_hours}");
}

#[test]
fn a_site_powered_on_for_one_night_completes() {
    // A campaign of one night and no catch-up: staying on that night is all a site can do.
    const ONE_NIGHT: &str = r#"id = "one-night"
title = "one night"
timezone = "Asia/Tokyo"
[nights]
first = 2026-01-21
last = 2026-01-21
opens = "20:00"
closes = "05:00"
"#;
    let text = "days = 4\n[staff]\nnext_morning = 1.0\non_error = 0.0\ndays_later = 0.0\n\
                [sites.hospital]\ncount = 30\nalways_on = 0.0\nnight_on = 1.0\n\
                [sites.clinic]\ncount = 300\nalways_on = 0.0\nnight_on = 1.0\n\
                [sites.dental]\ncount = 0\n[sites.pharmacy]\ncount = 0\n";
    let sc = Scenario::parse(text, |_| {
        Campaign::parse(ONE_NIGHT).map_err(|e| e.to_string())
    })
    .expect("valid scenario");
    let o = quiet(&sc);
    assert_eq!(o.summary.deadline.sites_by_last_night, 330);
    assert_eq!(o.summary.sites_applied, 330);
    assert_eq!(o.summary.devices_at_end["applied"], o.summary.devices);
    // Restarted the next morning before opening: nobody met the error.
    assert_eq!(o.summary.errors.patients, 0);
    // Nothing happened before the night of the 21st.
    let applied = state_column(&o.hourly, DeploymentState::Applied);
    assert!(applied[..2 * 24 + 20].iter().all(|n| *n == 0));
}

#[test]
fn readers_installed_in_the_night_wait_for_their_terminals_restart_in_the_morning() {
    const ONE_NIGHT: &str = r#"id = "one-night"
title = "one night"
timezone = "Asia/Tokyo"
[nights]
first = 2026-01-21
last = 2026-01-21
opens = "20:00"
closes = "05:00"
"#;
    let text = "days = 4\n[staff]\nnext_morning = 1.0\non_error = 0.0\ndays_later = 0.0\n\
                [sites.hospital]\ncount = 30\nalways_on = 0.0\nnight_on = 1.0\nauto_restart = 0.0\n\
                [sites.clinic]\ncount = 300\nalways_on = 0.0\nnight_on = 1.0\nauto_restart = 0.0\n\
                [sites.dental]\ncount = 0\n[sites.pharmacy]\ncount = 0\n";
    let sc = Scenario::parse(text, |_| {
        Campaign::parse(ONE_NIGHT).map_err(|e| e.to_string())
    })
    .expect("valid scenario");
    let o = quiet(&sc);
    let applied = state_column(&o.hourly, DeploymentState::Applied);
    let installed = state_column(&o.hourly, DeploymentState::Installed);
    // 04:00 on the 22nd: the night's installs are done, nobody has restarted yet; the readers
    // are installed like their terminals, none applied.
    let before_five = 3 * 24 + 4;
    assert!(
        installed[before_five] > 330,
        "readers wait too: {installed:?}"
    );
    assert!(
        applied[..=before_five].iter().all(|n| *n == 0),
        "{applied:?}"
    );
    // The morning's restarts apply terminals and readers alike.
    assert_eq!(o.summary.devices_at_end["applied"], o.summary.devices);
    assert_eq!(o.summary.illegal_transitions, 0);
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
    let sc = small_country();
    let a = quiet(&sc);
    let b = quiet(&sc);
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.hourly, b.hourly);
    let c = run(&sc, sc.seed + 1, &mut |_| {});
    assert_ne!(a.hourly, c.hourly);
    assert_eq!(a.summary.sites, c.summary.sites);
}

#[test]
fn progress_is_reported_for_every_hour() {
    let sc = clinics(5, "days = 2");
    let mut seen = Vec::new();
    run(&sc, 1, &mut |p| seen.push(p));
    assert_eq!(seen.len(), 48);
    assert_eq!(
        seen.last(),
        Some(&Progress {
            hour: 48,
            hours: 48
        })
    );
}

/// Ten clinics switched on all the time, one terminal each and no reader, two download slots,
/// each download exactly one hour (360 MB at 0.8 Mbps), installs instant, staff restarting
/// before opening.
fn ten_clinics_two_slots() -> Scenario {
    clinics(
        10,
        "days = 2\n\
         [distribution]\nmax_concurrent_downloads = 2\negress_gbps = 0.0016\n\
         terminal_package_mb = 360.0\nterminal_install_minutes = 0.0\n\
         site_downlink_mbps = [10.0, 10.0]\ndownload_failure_share = 0.0\n\
         [staff]\nnext_morning = 1.0\non_error = 0.0\ndays_later = 0.0\n\
         [sites.clinic]\nreaders = [1.0]\nalways_on = 1.0\nauto_restart = 0.0\n",
    )
}

#[test]
fn ten_downloads_through_two_slots_take_five_hours_of_the_first_night() {
    let o = quiet(&ten_clinics_two_slots());
    let s = &o.summary;
    assert_eq!((s.sites, s.devices), (10, 10));
    // Two at a time at 0.8 Mbps each: 1.6 Mbps, never more.
    assert_eq!(s.bandwidth.peak_concurrent_downloads, 2);
    assert!((s.bandwidth.peak_egress_gbps - 0.002).abs() < 1e-9, "{s:?}");
    let bytes: f64 = o.hourly.bytes.iter().sum();
    assert!((bytes - 3.6e9).abs() < 1.0, "{bytes}");
    // First check-ins spread over 20:00–20:30, then five rounds of one hour: all installed
    // between 01:00 and 01:30 on the 20th; nothing earlier than 21:00.
    let installed = |h: usize| o.hourly.states[h][4] + o.hourly.states[h][5];
    assert_eq!(installed(20), 0, "hour 20:00–21:00");
    assert!(installed(24) < 10, "00:00–01:00: {}", installed(24));
    assert_eq!(installed(25), 10, "by 02:00");
    // Each busy hour runs the two downloads at once; a freed slot waits for the head of the
    // queue's next check-in (at most a minute with two slots held an hour each), or, when the
    // device next in line was told to come back later (an hour's hold is a long estimate), for
    // it: with so few devices, a slot may stand idle for minutes in an hour.
    for h in 21..24 {
        assert_eq!(o.hourly.downloads_peak[h], 2, "hour {h}");
        let gbps = o.hourly.egress_gbps(h);
        assert!(
            gbps <= 0.0016 + 1e-9 && gbps > 0.0016 * 0.8,
            "hour {h}: {gbps}"
        );
    }
    // Devices waiting for a slot check in by appointment, not every two minutes: the 8 that
    // waited through the night (about 40 minutes each on average) asked far fewer than the
    // ~20 times each that polling would have cost.
    assert!(
        s.appointments.waiting_device_nights >= 8,
        "{:?}",
        s.appointments
    );
    assert!(
        s.appointments.checkins_per_waiting_device_night < 60.0,
        "{:?}",
        s.appointments
    );
    assert_eq!(s.deadline.sites_by_last_night, 10);
    // Restarted by staff on the 20th before 09:00: applied, no patient met the error.
    assert_eq!(s.sites_applied, 10);
    assert_eq!(s.errors.patients, 0);
    assert_eq!(
        o.hourly.restart_required_sites[30], 10,
        "05:00–07:00 on the 20th"
    );
    assert_eq!(o.hourly.restart_required_sites[33], 0, "by 10:00");
}

#[test]
fn each_site_restarting_at_its_first_error_meets_exactly_one() {
    // Same ten clinics, each with one reader, restarting at once on the first failed check-in,
    // every patient using the My Number card, every site calling the call centre.
    let sc = clinics(
        10,
        "days = 2\n\
         [distribution]\nmax_concurrent_downloads = 100\nterminal_install_minutes = 0.0\n\
         download_failure_share = 0.0\n\
         [staff]\nnext_morning = 0.0\non_error = 1.0\ndays_later = 0.0\n\
         on_error_delay_minutes = 0.0\ncall_share = 1.0\n\
         [sites.clinic]\nreaders = [0.0, 1.0]\nalways_on = 1.0\nauto_restart = 0.0\n\
         patients_per_day = 1000.0\nmynumber_share = 1.0\n",
    );
    let o = quiet(&sc);
    let s = &o.summary;
    assert_eq!(s.devices, 20);
    assert_eq!(s.errors.patients, 10);
    assert_eq!(s.errors.reader_901, 10, "every vendor's reader ends on 901");
    assert_eq!(s.errors.sites_meeting_errors, 10);
    // Tuesday 20 January: the clinics open at 09:00 and a card patient comes every ~32 s.
    assert_eq!(o.hourly.patient_errors[24 + 9], 10);
    // The call centre is open (Tue 8:00–18:00): every call lands within the next half hour.
    assert_eq!(s.call_centre.calls, 10);
    assert_eq!(
        s.call_centre.busiest_hour.as_deref(),
        Some("2026-01-20T09:00:00+09:00")
    );
    assert_eq!(s.sites_applied, 10);
}

#[test]
fn a_morning_mail_gets_sites_that_wait_for_errors_to_restart_before_opening() {
    let with_mail = |enabled: bool| {
        clinics(
            50,
            &format!(
                "days = 3\n\
                 [staff]\nnext_morning = 0.0\non_error = 1.0\ndays_later = 0.0\n\
                 [mail]\nenabled = {enabled}\nat = \"07:00\"\nacts_share = 1.0\n\
                 [sites.clinic]\nalways_on = 1.0\nauto_restart = 0.0\n\
                 patients_per_day = 200.0\nmynumber_share = 1.0\n"
            ),
        )
    };
    let without = quiet(&with_mail(false)).summary;
    let with = quiet(&with_mail(true)).summary;
    assert_eq!(without.errors.sites_meeting_errors, 50);
    assert_eq!(
        with.errors.patients, 0,
        "read at 07:00, restarted before 09:00"
    );
    assert_eq!(with.sites_applied, 50);
}

#[test]
fn catch_up_installs_in_opening_hours_make_patients_meet_the_error() {
    // Nobody leaves the terminal on at night: everyone is reached in the all-day phase, while
    // open, and the terminal then waits for a restart in front of patients.
    let sc = clinics(
        200,
        "[sites.clinic]\nalways_on = 0.0\nnight_on = 0.0\nauto_restart = 0.0\n",
    );
    let o = quiet(&sc);
    let s = &o.summary;
    assert_eq!(s.deadline.sites_by_last_night, 0);
    assert_eq!(s.deadline.sites_in_catch_up, 200);
    assert!(s.errors.patients > 100, "{s:?}");
    let first_error = o.hourly.patient_errors.iter().position(|n| *n > 0);
    assert!(
        first_error >= Some(12 * 24),
        "errors start on 31 January: {first_error:?}"
    );
}

/// [`small_country`] with `extra` laid over it and `waves` appended to its campaign file.
fn small_country_with(extra: &str, waves: &str) -> Scenario {
    let campaign = format!("{}\n{waves}", onshi_core::schedule::PRESET_2026_01);
    Scenario::parse(
        &format!(
            "[distribution]\nmax_concurrent_downloads = 40\negress_gbps = 0.08\n\
             [sites.hospital]\ncount = 80\n[sites.clinic]\ncount = 900\n\
             [sites.dental]\ncount = 700\n[sites.pharmacy]\ncount = 600\n{extra}"
        ),
        |_| Campaign::parse(&campaign).map_err(|e| e.to_string()),
    )
    .expect("valid scenario")
}

const THREE_WAVES: &str = "[waves]\nsizes = [\"2%\", \"20%\"]\n";

#[test]
fn a_faulty_release_is_held_by_the_first_wave_and_reaches_few_sites() {
    let fault = "[fault]\nunhealthy_after_restart_share = 0.5\n";
    let without = quiet(&small_country_with(fault, ""));
    let with = quiet(&small_country_with(fault, THREE_WAVES));
    assert!(without.summary.waves.is_none());
    assert!(
        without.summary.fault.sites_reached > 1_000,
        "{:?}",
        without.summary.fault
    );
    let w = with.summary.waves.as_ref().expect("waves");
    assert_eq!(w.held_wave, Some(1), "{w:?}");
    assert_eq!(w.opened, 1, "{w:?}");
    assert!(
        with.summary.fault.sites_reached * 10 < without.summary.fault.sites_reached,
        "with waves {:?}, without {:?}",
        with.summary.fault,
        without.summary.fault
    );
    assert_eq!(with.summary.illegal_transitions, 0);
    assert_eq!(with.summary.downloads_started_outside_windows, 0);
}

#[test]
fn a_healthy_release_opens_every_wave_and_is_held_by_none() {
    let o = quiet(&small_country_with("", THREE_WAVES));
    let w = o.summary.waves.as_ref().expect("waves");
    assert_eq!(w.held_at, None, "{w:?}");
    assert_eq!(w.opened, 3, "{w:?}");
    assert_eq!(o.summary.fault.sites_reached, 0);
    assert_eq!(o.summary.illegal_transitions, 0);
    let plain = quiet(&small_country_with("", ""));
    // Waves cost nights, not sites: the fleet is still reached within the run.
    assert!(
        o.summary.sites_applied * 10 >= plain.summary.sites_applied * 9,
        "with waves {} applied, without {}",
        o.summary.sites_applied,
        plain.summary.sites_applied
    );
}

/// [`small_country`] with a tenth of its egress: bandwidth, not power, is the limit.
fn thin_country(extra: &str) -> Scenario {
    Scenario::parse(
        &format!(
            "[distribution]\nmax_concurrent_downloads = 40\negress_gbps = 0.008\n\
             [sites.hospital]\ncount = 80\n[sites.clinic]\ncount = 900\n\
             [sites.dental]\ncount = 700\n[sites.pharmacy]\ncount = 600\n{extra}"
        ),
        preset_campaign,
    )
    .expect("valid scenario")
}

#[test]
fn deltas_move_fewer_bytes_and_reach_more_sites_when_bandwidth_is_the_limit() {
    let deltas = "[deltas]\nbase_share = 0.9\nratio = 0.1\n";
    for (without, with) in [
        (small_country_with("", ""), small_country_with(deltas, "")),
        (thin_country(""), thin_country(deltas)),
    ] {
        let (without, with) = (quiet(&without), quiet(&with));
        let (a, b) = (&without.summary, &with.summary);
        // 90 % of the devices fetch a tenth: about 19 % of the bytes (failed deltas refetch
        // whole).
        let share = b.bandwidth.transferred_tb / a.bandwidth.transferred_tb;
        assert!((0.17..0.23).contains(&share), "{share}: {a:?} {b:?}");
        assert!(b.deadline.sites_by_last_night >= a.deadline.sites_by_last_night);
        assert_eq!(b.illegal_transitions, 0);
        assert_eq!(b.downloads_started_outside_windows, 0);
    }
    // Where power is the limit (sites switched off at night) deltas change little; where the
    // egress is, they reach more sites by the last night.
    let (a, b) = (quiet(&thin_country("")), quiet(&thin_country(deltas)));
    assert!(
        b.summary.deadline.sites_by_last_night > a.summary.deadline.sites_by_last_night,
        "{:?} vs {:?}",
        b.summary.deadline,
        a.summary.deadline
    );
}
