use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, preset_campaign)
}

fn error(text: &str) -> String {
    parse(text).expect_err("invalid scenario").to_string()
}

#[test]
fn an_empty_file_is_the_national_preset() {
    let empty = parse("").expect("defaults");
    let preset = Scenario::preset("national-2026-01").expect("preset");
    assert_eq!(empty.title, preset.title);
    assert_eq!(empty.sites, preset.sites);
    assert_eq!(empty.distribution, preset.distribution);
    assert_eq!(empty.staff, preset.staff);
    assert_eq!(empty.campaign.id(), "2026-01");
}

#[test]
fn the_national_preset_has_the_brief_s_fleet_and_the_notice_s_campaign() {
    let s = Scenario::preset("national-2026-01").expect("preset");
    let counts: Vec<u32> = s.sites.iter().map(|k| k.count).collect();
    assert_eq!(counts, [8_200, 89_700, 70_300, 61_500]);
    assert_eq!(s.site_count(), 229_700);
    assert_eq!(s.days, 21);
    assert_eq!(s.start.to_string(), "2026-01-19");
    assert_eq!(s.campaign_ref, "preset:2026-01");
    assert_eq!(s.campaign.windows().len(), 11);
    assert_eq!(s.site_kind(InstitutionKind::Hospital).readers.len(), 4);
    assert_eq!(s.distribution.max_concurrent_downloads, 20_000);
    assert_eq!(s.distribution.egress_bps, 40e9);
    assert!(s.mail.is_none(), "the notice sends no morning e-mail");
    // Sites by population: Tokyo (13) about 11 %, Tottori (31) the fewest.
    assert!((s.prefectures.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(
        (0.11..0.12).contains(&s.prefectures[12]),
        "{}",
        s.prefectures[12]
    );
    let least = s.prefectures.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(s.prefectures[30], least);
}

#[test]
fn a_file_names_only_what_it_changes() {
    let s = parse(
        "seed = 9\n[distribution]\nmax_concurrent_downloads = 50000\negress_gbps = 100\n\
         [mail]\nenabled = true\n[sites.clinic]\nauto_restart = 0.6\n",
    )
    .expect("valid");
    assert_eq!(s.seed, 9);
    assert_eq!(s.distribution.max_concurrent_downloads, 50_000);
    assert_eq!(
        s.distribution.egress_bps, 100e9,
        "an integer where a number is expected"
    );
    assert_eq!(s.site_kind(InstitutionKind::Clinic).auto_restart, 0.6);
    assert_eq!(s.site_kind(InstitutionKind::Dental).auto_restart, 0.2);
    let mail = s.mail.expect("enabled");
    assert_eq!(mail.at.to_string(), "07:00:00");
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    assert!(error("[sites.clinic]\nnight_onn = 0.3\n").contains("`sites.clinic.night_onn`"));
    assert!(error("throttle = 3\n").contains("unknown field `throttle`"));
    assert!(error("[sites.surgery]\ncount = 3\n").contains("`sites.surgery`"));
}

#[test]
fn wrong_types_and_out_of_range_values_name_the_field() {
    let e = error("[distribution]\nmax_concurrent_downloads = \"many\"\n");
    assert!(
        e.contains("`distribution.max_concurrent_downloads` must be an integer, not a string"),
        "{e}"
    );
    let e = error("[sites.dental]\nnight_on = 1.5\n");
    assert!(
        e.contains("`sites.dental.night_on` = 1.5: must be a share between 0 and 1"),
        "{e}"
    );
    let e = error("[distribution]\nmax_concurrent_downloads = 0\n");
    assert!(e.contains("distribution.max_concurrent_downloads"), "{e}");
    let e = error("[sites.hospital]\nreaders = [0.5, 0.4]\n");
    assert!(
        e.contains("`sites.hospital.readers`") && e.contains("not 1"),
        "{e}"
    );
    let e = error("[sites.hospital]\nreaders = [0.0, 0.0, 0.0, 0.5, 0.5]\n");
    assert!(e.contains("0, 1, 2, 3 readers"), "{e}");
    let e = error("[sites.pharmacy]\nopens = \"9:00\"\n");
    assert!(
        e.contains("`sites.pharmacy.opens`") && e.contains("HH:MM"),
        "{e}"
    );
    let e = error("[sites.pharmacy]\nopens = \"19:00\"\n");
    assert!(
        e.contains("`sites.pharmacy.closes`") && e.contains("after opens"),
        "{e}"
    );
    let e = error("[vendors]\ncanon = 0.5\n");
    assert!(e.contains("`vendors`") && e.contains("add up to"), "{e}");
    let e = error("start = 2026-01-19T00:00:00+09:00\n");
    assert!(e.contains("`start`") && e.contains("plain date"), "{e}");
    let e = error("days = 0\n");
    assert!(e.contains("`days` = 0"), "{e}");
    let e = error("[distribution]\nsite_downlink_mbps = [100.0, 10.0]\n");
    assert!(e.contains("`distribution.site_downlink_mbps`"), "{e}");
    let e = error("[prefectures]\nweights = [1, 2, 3]\n");
    assert!(
        e.contains("`prefectures.weights`") && e.contains("47 weights"),
        "{e}"
    );
    let mut zeros = vec!["0"; 47];
    let e = error(&format!(
        "[prefectures]\nweights = [{}]\n",
        zeros.join(", ")
    ));
    assert!(e.contains("above 0"), "{e}");
    zeros[3] = "-1";
    let e = error(&format!(
        "[prefectures]\nweights = [{}]\n",
        zeros.join(", ")
    ));
    assert!(e.contains("`prefectures.weights[3]` = -1"), "{e}");
}

#[test]
fn bad_toml_and_bad_campaigns_are_reported() {
    assert!(error("days = \n").starts_with("scenario file is not valid TOML"));
    let e = error("campaign = \"preset:2027-13\"\n");
    assert!(
        e.contains("`campaign` = \"preset:2027-13\"") && e.contains("unknown preset"),
        "{e}"
    );
    let e = error(
        "[sites.hospital]\ncount = 0\n[sites.clinic]\ncount = 0\n[sites.dental]\ncount = 0\n[sites.pharmacy]\ncount = 0\n",
    );
    assert!(e.contains("at least one site"), "{e}");
    assert_eq!(
        Scenario::preset("regional")
            .expect_err("unknown")
            .to_string(),
        "unknown scenario preset \"regional\": known presets are national-2026-01"
    );
}
