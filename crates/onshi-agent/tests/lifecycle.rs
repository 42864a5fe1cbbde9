//! The agent binary against the real server on a simulated clock: the whole life of an update
//! on one site, with the faults the issue names (kill -9 mid-download, a corrupted partial
//! file, a damaged state file) on the way.

mod common;

use common::*;
use onshi_core::deployment::DeploymentState as S;
use onshi_testkit::agent::{log_events, part_len};
use onshi_testkit::wait_for;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_downloads_in_the_window_resumes_after_kill_installs_and_applies_on_restart() {
    let terminal_pkg = package(6 * MIB, 1);
    let server = start_server(
        "2026-01-19T18:00:00+09:00",
        "2.0.0",
        &terminal_pkg,
        &package(200_000, 2),
    )
    .await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("clinic");
    let (terminal, readers) = AGENT
        .enroll(&server, CLINIC, &dir, &["--reader", "canon:R-1"])
        .await;
    let reader = readers[0];
    let rate = ["--max-rate", "2000000"];

    // Before 20:00: the agent checks in and is told to wait; nothing is downloaded.
    let agent = AGENT.run(&dir, &rate);
    wait_for("a first check-in", || {
        log_events(&agent.log_text(), "reported").is_empty()
            && std::fs::read_to_string(dir.join("state.json"))
                .is_ok_and(|s| s.contains("last_contact"))
    })
    .await;
    let before = AGENT.status(&dir).await;
    assert_eq!(
        before["components"][0]["advice"], "keep_powered_on",
        "{before}"
    );
    assert_eq!(
        part_len(&dir),
        None,
        "nothing may be downloaded before the window"
    );
    assert_eq!(server.state_of(terminal).await, S::Waiting);

    // 20:00, the first night: the download starts. Kill -9 once a megabyte is on disk.
    server.set_clock("2026-01-19T20:00:00+09:00").await;
    wait_for("a partial download", || {
        part_len(&dir).is_some_and(|n| n >= MIB as u64)
    })
    .await;
    agent.kill();
    let first = part_len(&dir).expect("partial file kept");
    assert!(first < terminal_pkg.len() as u64, "killed mid-download");

    // Started again: it resumes where it stopped (the bytes on disk are not fetched again).
    let agent = AGENT.run(&dir, &rate);
    wait_for("the resume", || {
        !log_events(&agent.log_text(), "resuming download").is_empty()
    })
    .await;
    let resumed = log_events(&agent.log_text(), "resuming download");
    assert_eq!(resumed[0]["fields"]["offset"], first, "{resumed:?}");
    wait_for("more bytes", || {
        part_len(&dir).is_some_and(|n| n >= first + MIB as u64)
    })
    .await;
    agent.kill();

    // A byte of the partial file rots and the state file is damaged while the agent is down.
    let part = std::fs::read_dir(dir.join("downloads"))
        .expect("downloads")
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .expect("part file")
        .path();
    let mut bytes = std::fs::read(&part).expect("read part");
    bytes[1000] ^= 0xff;
    std::fs::write(&part, &bytes).expect("corrupt");
    std::fs::write(dir.join("state.json"), b"{\"devices\": {").expect("damage state");

    // The corrupted package is detected, deleted, reported and fetched again, then installed.
    let agent = AGENT.run(&dir, &rate);
    server.wait_state(terminal, S::Installed).await;
    let log = agent.log_text();
    assert!(
        !log_events(
            &log,
            "downloaded package does not match its SHA-256; deleting it"
        )
        .is_empty(),
        "{log}"
    );
    let verified: Vec<_> = log_events(&log, "package downloaded and verified")
        .into_iter()
        .filter(|e| e["fields"]["size"] == terminal_pkg.len())
        .collect();
    assert_eq!(verified.len(), 1, "{log}");
    assert_eq!(
        verified[0]["fields"]["resumed_from"], 0,
        "refetched from the start"
    );
    assert!(
        dir.join("state.json.damaged").exists(),
        "damaged state set aside"
    );
    let audit = server.audit().await;
    assert!(
        audit.contains("SHA-256 mismatch"),
        "the mismatch is reported: {audit}"
    );
    assert!(dir.join("versions/2.0.0/package").is_file());
    assert_eq!(
        std::fs::read(dir.join("versions/2.0.0/package")).expect("installed package"),
        terminal_pkg
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("current")).expect("pointer"),
        "2.0.0"
    );

    // The reader installed its component; it waits for the terminal's restart to apply it.
    server.wait_state(reader, S::Installed).await;

    // Installed — restart required, both on the server and in the site's own status.
    let s = AGENT.status(&dir).await;
    let t = &s["components"][0];
    assert_eq!(t["installed"], "2.0.0", "{s}");
    assert_eq!(t["running"], "1.0.0", "{s}");
    assert_eq!(t["restart_required"], true, "{s}");
    // Installed in the night of the 19th: restart the morning after, from 05:00 (the notice's
    // 翌日朝(5時以降)), the same words as the site page.
    assert_eq!(t["advice"], "restart_after", "{s}");
    assert!(
        t["advice_text"]
            .as_str()
            .is_some_and(|a| a.contains("2026年1月20日(火) 05:00以降")),
        "{s}"
    );
    let r = &s["components"][1];
    assert_eq!(r["installed"], "2.0.0", "{s}");
    assert_eq!(r["running"], "1.0.0", "{s}");
    assert_eq!(
        r["advice"], "restart_after",
        "the reader waits on the same restart: {s}"
    );
    let text = AGENT
        .output(vec![
            "status".into(),
            "--state-dir".into(),
            dir.display().to_string(),
        ])
        .await;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("インストール完了の確認手順は、公式サイトで別途案内されます。"),
        "until the campaign names the official check, the agent says it will be announced: {text}"
    );
    assert!(
        text.contains(
            "更新アプリケーションのインストールが完了しています。資格確認端末を再起動してください。"
        ),
        "{text}"
    );
    let reader_block = text
        .split("顔認証付きカードリーダー")
        .nth(1)
        .expect("the reader's block");
    assert!(
        reader_block.contains("再起動: 資格確認端末の再起動で適用"),
        "{text}"
    );
    assert!(!text.contains("再起動: 不要"), "{text}");
    assert!(!text.contains("対応は不要です"), "{text}");
    assert_eq!(server.state_of(terminal).await, S::Installed);
    assert_eq!(server.state_of(reader).await, S::Installed);
    agent.kill();

    // Staff restart the terminal (the morning after): applied.
    server.set_clock("2026-01-20T07:00:00+09:00").await;
    let out = AGENT
        .output(vec![
            "restart".into(),
            "--state-dir".into(),
            dir.display().to_string(),
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_state(terminal, S::Applied).await;
    let s = AGENT.status(&dir).await;
    assert_eq!(s["components"][0]["running"], "2.0.0", "{s}");
    assert_eq!(s["components"][0]["restart_required"], false, "{s}");
    assert_eq!(s["components"][0]["advice"], "done", "{s}");
    // The same restart applied the reader's component.
    server.wait_state(reader, S::Applied).await;
    assert_eq!(s["components"][1]["running"], "2.0.0", "{s}");
    assert_eq!(s["components"][1]["advice"], "done", "{s}");
}
