//! The server's layering, checked on its source: no file imports a file that imports it back
//! (no cycle of any length), and the service layer never reaches up into `routes` or `pages`,
//! never speaks HTTP and never reads the wall clock.
//!
//! The graph is built from the text: every `crate::…`, `super::…` and `self::…` path (with
//! `{…}` groups) and every path through a child module the file declares with `mod`, resolved
//! to the file that defines the module it names. `#[cfg(test)] mod tests { … }` blocks and
//! `//` comment lines are left out: a unit test's `use super::*` is not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside the crate: `[]` is the crate root, `["pages", "dashboard"]` a page.
type ModPath = Vec<String>;

/// The crate's files by module path, and each file's text with tests and comments removed.
struct Source {
    files: BTreeMap<ModPath, (String, String)>,
}

impl Source {
    fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                    let name = relative(src, &path);
                    files.insert(module_of(&name), (name, strip(&text)));
                }
            }
        }
        Self { files }
    }

    /// The file a path names: its longest prefix that is a module with a file.
    fn resolve(&self, path: &[String]) -> Option<&ModPath> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.files.get_key_value(&path[..n]).map(|(k, _)| k))
    }

    /// Each file's dependencies on other files (module paths), self-references left out.
    fn graph(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut graph = BTreeMap::new();
        for (module, (_, text)) in &self.files {
            let children = declared_children(text);
            let mut deps = BTreeSet::new();
            for path in paths(text) {
                let Some(absolute) = absolutise(module, &path, &children) else {
                    continue;
                };
                if let Some(target) = self.resolve(&absolute)
                    && target != module
                {
                    deps.insert(target.clone());
                }
            }
            graph.insert(module.clone(), deps);
        }
        graph
    }

    fn name(&self, module: &ModPath) -> &str {
        self.files
            .get(module)
            .map_or("?", |(name, _)| name.as_str())
    }
}

fn relative(src: &Path, path: &Path) -> String {
    path.strip_prefix(src)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// `lib.rs` → crate root, `pages/mod.rs` → `pages`, `pages/chart.rs` → `pages::chart`.
fn module_of(file: &str) -> ModPath {
    let file = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: ModPath = file.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comment lines and without the trailing `#[cfg(test)] mod tests { … }`.
fn strip(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if line.starts_with("#[cfg(test)]")
            && lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.contains('{'))
        {
            break;
        }
        if !line.starts_with("//") {
            out.push_str(lines[i]);
            out.push('\n');
        }
        i += 1;
    }
    out
}

/// The modules a file declares as its children (`mod x;`, `pub mod x;`).
fn declared_children(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(|n| n.trim().to_owned())
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path of two or more segments in the text (`a::b::c`), groups expanded
/// (`a::{b, c::d}` gives `a::b` and `a::c::d`).
fn paths(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_path = is_ident(chars[i])
            && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':'))
            && !chars[i].is_ascii_digit();
        if !starts_path {
            i += 1;
            continue;
        }
        let (path, end) = path_at(&chars, i, Vec::new(), &mut out);
        if path.len() >= 2 {
            out.push(path);
        }
        i = end.max(i + 1);
    }
    out
}

/// Reads the path starting at `i` after the segments in `prefix`; group members go to `out`.
fn path_at(
    chars: &[char],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> (Vec<String>, usize) {
    loop {
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        if i == start {
            return (prefix, i);
        }
        prefix.push(chars[start..i].iter().collect());
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
            if chars.get(i) == Some(&'{') {
                i += 1;
                loop {
                    while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                        i += 1;
                    }
                    match chars.get(i) {
                        None => return (Vec::new(), i),
                        Some('}') => return (Vec::new(), i + 1),
                        Some(_) => {
                            let (member, end) = path_at(chars, i, prefix.clone(), out);
                            if member.len() > prefix.len() {
                                out.push(member);
                            }
                            // Skip what the member left (`as x`, `*`).
                            i = end.max(i + 1);
                            while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                                i += 1;
                            }
                        }
                    }
                }
            }
        } else {
            return (prefix, i);
        }
    }
}

/// The absolute module path a path in `module` names, if it names one of the crate's modules.
fn absolutise(module: &ModPath, path: &[String], children: &BTreeSet<String>) -> Option<ModPath> {
    let mut base = module.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first) if children.contains(first) => {}
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a ModPath) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn cycle_report(source: &Source) -> Vec<String> {
    let graph = source.graph();
    cycles(&graph)
        .iter()
        .map(|component| {
            let members: BTreeSet<&ModPath> = component.iter().collect();
            let lines: Vec<String> = component
                .iter()
                .map(|m| {
                    let inside: Vec<&str> = graph[m]
                        .iter()
                        .filter(|d| members.contains(d))
                        .map(|d| source.name(d))
                        .collect();
                    format!("  {} imports {}", source.name(m), inside.join(", "))
                })
                .collect();
            format!(
                "{} files import each other:\n{}",
                component.len(),
                lines.join("\n")
            )
        })
        .collect()
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let source = Source::read(&src_dir());
    assert!(source.files.len() > 10, "the sources were not found");
    let report = cycle_report(&source);
    assert!(
        report.is_empty(),
        "import cycles in onshi-server/src (move the shared item down a layer):\n{}",
        report.join("\n")
    );
}

#[test]
fn services_never_import_routes_or_pages() {
    let source = Source::read(&src_dir());
    let graph = source.graph();
    let services: Vec<&ModPath> = graph
        .keys()
        .filter(|m| m.first().map(String::as_str) == Some("services"))
        .collect();
    assert!(!services.is_empty(), "there is no services/ layer");
    let mut wrong = Vec::new();
    for s in services {
        for dep in &graph[s] {
            if matches!(dep.first().map(String::as_str), Some("routes" | "pages")) {
                wrong.push(format!("{} imports {}", source.name(s), source.name(dep)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "services must not reach up into routes or pages:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn services_speak_no_http_and_read_no_wall_clock() {
    let source = Source::read(&src_dir());
    let mut wrong = Vec::new();
    for (module, (name, text)) in &source.files {
        if module.first().map(String::as_str) != Some("services") {
            continue;
        }
        for banned in [
            "axum",
            "http::",
            "SystemTime::now",
            "Timestamp::now",
            "Zoned::now",
            "Instant::now",
        ] {
            if text.contains(banned) {
                wrong.push(format!("{name} uses {banned}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "services take the time from AppState's clock and return domain values, not HTTP:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_through_super_and_groups() {
    let file = |name: &str, text: &str| (module_of(name), (name.to_owned(), strip(text)));
    let source = Source {
        files: [
            file("lib.rs", "mod a;\nmod b;\nmod pages;\nmod c;\n"),
            file("a.rs", "use crate::{b::Thing, c};\n"),
            file("b.rs", "use crate::pages::x::Y;\n"),
            file("c.rs", "// use crate::a;\n"),
            file("pages/mod.rs", "pub mod x;\npub fn layout() {}\n"),
            file(
                "pages/x.rs",
                "use super::layout;\nfn f() { crate::a::go() }\n#[cfg(test)]\nmod tests {\n use crate::c;\n}\n",
            ),
        ]
        .into_iter()
        .collect(),
    };
    let report = cycle_report(&source);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(report[0].starts_with("3 files"), "{}", report[0]);
    for name in ["a.rs", "b.rs", "pages/x.rs"] {
        assert!(report[0].contains(name), "{}", report[0]);
    }
    assert!(!report[0].contains("c.rs"), "{}", report[0]);
}
