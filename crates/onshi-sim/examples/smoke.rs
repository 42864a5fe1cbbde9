fn main() {
    let s = onshi_sim::Scenario::preset("national-2026-01").expect("preset");
    let t = std::time::Instant::now();
    let o = onshi_sim::run(&s, 1, &mut |_| {});
    eprintln!("{:.2}s", t.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::to_string_pretty(&o.summary).expect("json")
    );
}
