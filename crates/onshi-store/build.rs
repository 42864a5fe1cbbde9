//! Lists the schema's migrations for `src/migrations.rs`, so that a new migration is a new file
//! and no code. `migrations/NNNN_name.sql` is one text both databases apply;
//! `migrations/sqlite/NNNN_name.sql` with `migrations/postgres/NNNN_name.sql` is a migration
//! whose SQL differs between them (one file per backend). A file named otherwise, half a pair,
//! or a number used twice stops the build with the file named, rather than being skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One migration: its number, name and the file each backend applies.
struct Found {
    name: String,
    sqlite: Option<PathBuf>,
    postgres: Option<PathBuf>,
    shared: Option<PathBuf>,
}

fn main() {
    // Read when the script runs, not when it was compiled: a build script compiled for one
    // checkout must not list another checkout's (or a deleted clone's) migrations.
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found: BTreeMap<u32, Found> = BTreeMap::new();
    for (dir, backend) in [
        (root.clone(), None),
        (root.join("sqlite"), Some("sqlite")),
        (root.join("postgres"), Some("postgres")),
    ] {
        println!("cargo:rerun-if-changed={}", dir.display());
        for path in sql_files(&dir) {
            let (number, name) = parse_name(&path);
            let entry = found.entry(number).or_insert_with(|| Found {
                name: name.clone(),
                sqlite: None,
                postgres: None,
                shared: None,
            });
            if entry.name != name {
                fail(&format!(
                    "{}: migration {number:04} is already named {:?}; one number, one migration",
                    path.display(),
                    entry.name
                ));
            }
            let slot = match backend {
                None => &mut entry.shared,
                Some("sqlite") => &mut entry.sqlite,
                Some(_) => &mut entry.postgres,
            };
            *slot = Some(path);
        }
    }
    let mut sqlite = String::new();
    let mut postgres = String::new();
    for (number, f) in &found {
        let (s, p) = match (&f.shared, &f.sqlite, &f.postgres) {
            (Some(shared), None, None) => (shared, shared),
            (None, Some(s), Some(p)) => (s, p),
            (Some(shared), _, _) => fail(&format!(
                "{}: migration {number:04} has a shared file and a per-backend one; keep one",
                shared.display()
            )),
            (None, Some(only), None) | (None, None, Some(only)) => fail(&format!(
                "{}: migration {number:04} needs the other backend's file too \
                 (migrations/sqlite/ and migrations/postgres/ come in pairs)",
                only.display()
            )),
            (None, None, None) => unreachable!("every entry has a file"),
        };
        // refinery's naming: V<version>__<name>.
        let id = format!("V{number}__{}", f.name);
        writeln!(sqlite, "    ({id:?}, include_str!({:?})),", s.display()).ok();
        writeln!(postgres, "    ({id:?}, include_str!({:?})),", p.display()).ok();
    }
    let code = format!(
        "/// SQLite's migrations: refinery's name and the SQL.\n\
         pub(crate) const SQLITE: &[(&str, &str)] = &[\n{sqlite}];\n\
         /// PostgreSQL's migrations: refinery's name and the SQL.\n\
         pub(crate) const POSTGRES: &[(&str, &str)] = &[\n{postgres}];\n"
    );
    if found.is_empty() {
        fail(&format!(
            "{}: no migrations found; a store without its schema must not build",
            root.display()
        ));
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("migrations.rs"), code).expect("writing OUT_DIR/migrations.rs");
}

/// The `.sql` files directly in `dir` (none if it does not exist), sorted.
fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        if f.extension().and_then(|e| e.to_str()) != Some("sql") {
            fail(&format!(
                "{}: only migrations (NNNN_name.sql) belong in migrations/",
                f.display()
            ));
        }
    }
    files
}

/// `0007_wave_tally.sql` → (7, "wave_tally").
fn parse_name(path: &Path) -> (u32, String) {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let parsed = stem.split_once('_').and_then(|(digits, name)| {
        let ok = digits.len() == 4
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        Some((digits.parse::<u32>().ok()?, name.to_owned())).filter(|_| ok)
    });
    match parsed {
        Some((n, name)) if n > 0 => (n, name),
        _ => fail(&format!(
            "{}: a migration is named NNNN_name.sql (four digits from 0001, then lower-case \
             letters, digits and _)",
            path.display()
        )),
    }
}

fn fail(message: &str) -> ! {
    panic!("onshi-store migrations: {message}");
}
