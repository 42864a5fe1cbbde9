use super::*;
use ReceptionEvent as E;

fn desk_at_consent_end(vendor: Vendor) -> Reception {
    let mut desk = Reception::new(vendor, TerminalState::PendingRestart);
    for e in [E::CardInserted, E::FaceVerified, E::ConsentCompleted] {
        desk.apply(e, || QueryOutcome::Confirmed)
            .expect("legal step");
    }
    desk
}

fn at_consent_error(vendor: Vendor) -> ReaderScreen {
    desk_at_consent_end(vendor).reader_screen()
}

#[test]
fn panasonic_shows_completion_and_stays_there_after_the_card_is_taken_out() {
    let mut desk = desk_at_consent_end(Vendor::Panasonic);
    assert_eq!(desk.reader_screen().screen, "completion_frozen");
    assert!(desk.reader_screen().stuck);
    desk.apply(E::CardRemoved, || QueryOutcome::Confirmed)
        .expect("card out");
    assert_eq!(desk.reader_screen().screen, "completion_frozen");
    assert!(
        !desk.confirmed(),
        "a completion screen is not a confirmation"
    );
}

#[test]
fn canon_reader_stays_on_please_wait_when_restart_pending() {
    let s = at_consent_error(Vendor::Canon);
    assert_eq!(s.screen, "please_wait");
    assert_eq!(s.text, "しばらくお待ちください");
    assert_eq!(s.source, Source::Quoted);
    assert!(s.stuck);
}

#[test]
fn usen_almex_and_fujitsu_spin_over_the_last_consent_screen() {
    for v in [Vendor::UsenAlmex, Vendor::FujitsuJapan] {
        let s = at_consent_error(v);
        assert_eq!(s.screen, "consent_loading", "{v}");
        assert!(s.stuck);
        assert_eq!(s.text, CONSENT_ITEMS[2]);
        assert_eq!(s.source, Source::Assumed);
    }
}

#[test]
fn atlus_returns_to_the_first_screen() {
    let s = at_consent_error(Vendor::Atlus);
    assert_eq!(s.screen, "initial");
    assert!(!s.stuck);
}

#[test]
fn the_terminal_shows_error_dialog_1_at_consent_and_2_after_the_first_ok() {
    let mut desk = desk_at_consent_end(Vendor::Canon);
    assert_eq!(desk.terminal_screen().dialog, Some("error"));
    assert_eq!(desk.terminal_screen().count, Some(1));
    desk.apply(E::OkPressed, || QueryOutcome::Confirmed)
        .expect("OK");
    assert_eq!(desk.terminal_screen().count, Some(2));
    assert_eq!(
        desk.reader_screen().screen,
        "please_wait",
        "the reader moves only after the second OK"
    );
    desk.apply(E::OkPressed, || QueryOutcome::Confirmed)
        .expect("OK");
    assert_eq!(desk.terminal_screen().dialog, None);
    assert_eq!(desk.reader_screen().screen, "error_901");
    assert_eq!(desk.reader_screen().code, Some("901"));
}

#[test]
fn every_vendor_ends_on_901_with_its_text_after_the_second_ok() {
    let quoted: [(Vendor, &[&str]); 3] = [
        (
            Vendor::UsenAlmex,
            &[
                "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】",
            ],
        ),
        (
            Vendor::FujitsuJapan,
            &[
                "受付窓口にご連絡ください",
                "職員はオンライン資格確認等システムの障害状況を確認してください【901: オンライン資格確認等システムの障害】",
            ],
        ),
        (
            Vendor::Atlus,
            &[
                "エラーコード表示",
                "▲ご確認ください▲",
                "職員はオンライン資格確認等システムの障害発生状況を確認してください",
                "【901】",
                "マイナンバーカードを取り出し受付窓口までお越しください",
            ],
        ),
    ];
    for v in Vendor::ALL {
        let trace = run_patient(v, TerminalState::PendingRestart);
        assert!(!trace.confirmed, "{v}");
        let last = trace.steps.last().expect("steps");
        assert_eq!(last.event, E::CardRemoved);
        let s = &last.reader;
        assert_eq!((s.screen, s.code), ("error_901", Some("901")), "{v}");
        assert_eq!(
            s.text.matches("901").count(),
            1,
            "{v}: the code once, as the screen shows it: {}",
            s.text
        );
        if let Some((_, lines)) = quoted.iter().find(|(q, _)| *q == v) {
            assert_eq!(s.text, lines.join("\n"), "{v} must quote the notice");
            assert_eq!(s.source, Source::Quoted, "{v}");
        } else {
            assert_eq!(
                s.source,
                Source::Assumed,
                "{v} is only a picture in the notice"
            );
        }
        assert_eq!(profile(v).error_901_source(), s.source, "{v}");
    }
}

#[test]
fn only_the_texts_the_notice_quotes_are_quoted_at_every_step() {
    for v in Vendor::ALL {
        for terminal in [TerminalState::PendingRestart, TerminalState::UpToDate] {
            for step in run_patient(v, terminal).steps {
                let r = &step.reader;
                let quoted = (v == Vendor::Canon && r.screen == "please_wait")
                    || (r.screen == "error_901"
                        && matches!(v, Vendor::UsenAlmex | Vendor::FujitsuJapan | Vendor::Atlus));
                let expected = if quoted {
                    Source::Quoted
                } else {
                    Source::Assumed
                };
                assert_eq!(
                    r.source, expected,
                    "{v} {terminal} {:?} {}",
                    step.event, r.screen
                );
            }
        }
    }
}

#[test]
fn the_terminal_dialogs_are_assumed_and_name_no_cause() {
    let mut desk = desk_at_consent_end(Vendor::UsenAlmex);
    for count in [1, 2] {
        let t = desk.terminal_screen();
        assert_eq!(t.count, Some(count));
        assert_eq!(t.source, Some(Source::Assumed), "a picture in the notice");
        let text = t.text.expect("a dialog has a text");
        assert!(
            !text.contains("再起動"),
            "the notice gives no cause: {text}"
        );
        desk.apply(E::OkPressed, || QueryOutcome::Confirmed)
            .expect("OK");
    }
    assert_eq!(desk.terminal_screen().source, None, "no dialog, no text");
}

#[test]
fn the_behaviour_at_consent_is_in_the_notices_words() {
    for (v, words) in [
        (
            Vendor::Panasonic,
            "完了画面が表示されるが、カードを抜き取っても画面が切り替わらない",
        ),
        (
            Vendor::Canon,
            "「しばらくお待ちください」と表示され、画面が切り替わらない",
        ),
        (
            Vendor::UsenAlmex,
            "最後に表示された同意画面上に、読み込み中の円が表示され、画面が切り替わらない",
        ),
        (Vendor::Atlus, "最初の画面に戻る"),
    ] {
        let s = at_consent_error(v);
        assert_eq!(s.behaviour, Some(words), "{v}");
        assert!(
            !s.text.contains(words),
            "the wording is not the description: {v}"
        );
    }
}

#[test]
fn the_trace_follows_the_contract_order() {
    let trace = run_patient(Vendor::Atlus, TerminalState::PendingRestart);
    let events: Vec<&str> = trace.steps.iter().map(|s| s.event.slug()).collect();
    assert_eq!(
        events,
        [
            "card_inserted",
            "face_verified",
            "consent_completed",
            "ok_pressed",
            "ok_pressed",
            "card_removed"
        ]
    );
    let counts: Vec<Option<u8>> = trace.steps.iter().map(|s| s.terminal.count).collect();
    assert_eq!(counts, [None, None, Some(1), Some(2), None, None]);
}

#[test]
fn an_up_to_date_terminal_confirms_and_ends_on_the_result_screen() {
    for v in Vendor::ALL {
        let trace = run_patient(v, TerminalState::UpToDate);
        assert!(trace.confirmed, "{v}");
        assert!(trace.steps.iter().all(|s| s.terminal.dialog.is_none()));
        assert_eq!(trace.steps.last().map(|s| s.reader.screen), Some("result"));
    }
}

#[test]
fn after_a_restart_the_same_patient_succeeds_and_the_log_keeps_both_attempts() {
    let mut log = ReceptionLog::default();
    let mut desk = desk_at_consent_end(Vendor::FujitsuJapan);
    for e in [E::OkPressed, E::OkPressed, E::CardRemoved] {
        desk.apply(e, || QueryOutcome::Confirmed).expect("legal");
    }
    log.record(&desk);
    desk.apply(E::TerminalRestarted, || QueryOutcome::Confirmed)
        .expect("restart");
    assert_eq!(desk.terminal_state(), TerminalState::UpToDate);
    assert_eq!(desk.reader_screen().screen, "initial");
    for e in [E::CardInserted, E::FaceVerified, E::ConsentCompleted] {
        desk.apply(e, || QueryOutcome::Confirmed).expect("legal");
    }
    assert!(desk.confirmed());
    log.record(&desk);
    assert_eq!(log.attempts.len(), 2);
    assert_eq!(log.attempts[0].error, Some("901"));
    assert!(!log.attempts[0].confirmed);
    assert!(log.attempts[1].confirmed);
    assert_eq!(log.failures(), 1);
}

#[test]
fn pin_works_like_the_face() {
    let mut desk = Reception::new(Vendor::Canon, TerminalState::UpToDate);
    for e in [E::CardInserted, E::PinVerified, E::ConsentCompleted] {
        desk.apply(e, || QueryOutcome::Confirmed).expect("legal");
    }
    assert!(desk.confirmed());
}

#[test]
fn a_card_without_qualification_or_with_an_expired_certificate_is_not_confirmed() {
    for (outcome, screen) in [
        (QueryOutcome::NoQualification, "no_qualification"),
        (QueryOutcome::CertificateExpired, "certificate_expired"),
    ] {
        let mut desk = Reception::new(Vendor::Panasonic, TerminalState::UpToDate);
        for e in [E::CardInserted, E::FaceVerified] {
            desk.apply(e, || QueryOutcome::Confirmed).expect("legal");
        }
        let o = outcome.clone();
        desk.apply(E::ConsentCompleted, move || o).expect("legal");
        assert!(!desk.confirmed());
        assert_eq!(desk.reader_screen().screen, screen);
        let mut log = ReceptionLog::default();
        log.record(&desk);
        assert_eq!(log.attempts[0].error, Some(screen));
    }
}

#[test]
fn the_query_is_never_made_while_a_restart_is_pending() {
    let mut desk = Reception::new(Vendor::Canon, TerminalState::PendingRestart);
    for e in [E::CardInserted, E::FaceVerified] {
        desk.apply(e, || QueryOutcome::Confirmed).expect("legal");
    }
    desk.apply(E::ConsentCompleted, || {
        panic!("the old application never reaches the central query")
    })
    .expect("legal");
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut desk = Reception::new(Vendor::Canon, TerminalState::UpToDate);
    assert!(
        desk.apply(E::ConsentCompleted, || QueryOutcome::Confirmed)
            .is_err()
    );
    assert!(
        desk.apply(E::OkPressed, || QueryOutcome::Confirmed)
            .is_err()
    );
    assert!(
        desk.apply(E::CardRemoved, || QueryOutcome::Confirmed)
            .is_err()
    );
    desk.apply(E::CardInserted, || QueryOutcome::Confirmed)
        .expect("legal");
    assert!(
        desk.apply(E::CardInserted, || QueryOutcome::Confirmed)
            .is_err()
    );
    assert_eq!(
        desk.possible(),
        [
            E::FaceVerified,
            E::PinVerified,
            E::CardRemoved,
            E::TerminalRestarted
        ]
    );
}

#[test]
fn terminal_state_follows_running_and_installed_versions() {
    let v = |s: &str| s.parse::<Version>().expect("version");
    assert_eq!(
        TerminalState::from_versions(&v("1.0.0"), &v("2.0.0")),
        TerminalState::PendingRestart
    );
    assert_eq!(
        TerminalState::from_versions(&v("2.0.0"), &v("2.0.0")),
        TerminalState::UpToDate
    );
    assert_eq!("pending-restart".parse(), Ok(TerminalState::PendingRestart));
    assert!("stale".parse::<TerminalState>().is_err());
}
