//! Layout rules for `src/` (issue 12: the next layout).
//!
//! The crate is being reorganised into folders that follow the data flow. Two rules keep the
//! result from sliding back into a tangle, and are checked here rather than left to review:
//!
//! 1. **No import cycles between modules.** Every `.rs` file under `src/` is one module
//!    (`src/a/mod.rs` is `a`, `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` and
//!    `main.rs` are the crate root and left out). A file depends on every module it names: in
//!    `use` declarations (grouped ones included), in inline `crate::…` paths, in `super::…` and
//!    `self::…` paths, in paths that start with one of its own child modules (`deliver::run`
//!    in `sync/mod.rs`) or with a module it imported (`use crate::sync; sync::deliver::…`).
//!    A path counts for the longest prefix that is a module (`crate::sync::deliver::send` is
//!    `sync::deliver`, `crate::sync::Context` is `sync`). A parent and its child are modules like
//!    any other: `sync` calling `deliver::run` while `sync::deliver` uses `sync::Context` is a
//!    cycle. Cycles are why a change in one place breaks three others, and why a folder cannot be
//!    read, tested or moved on its own; shared types belong in a module both sides import, not
//!    in the parent of one of them. Test modules (`#[cfg(test)]`) are exempt: a test may reach
//!    anywhere.
//!
//! 2. **No source file over 500 lines**, bar the ones named with a reason in
//!    [`LONG_FILES_ALLOWED`]. Past that size a file usually holds more than one idea; splitting
//!    it is the cheapest moment to find the seams. The count is the whole file, tests included.
//!
//! The module graph comes from a small Rust lexer below (std only): it drops comments, string,
//! char and raw-string literals before looking for paths, and brace-counts over tokens to skip
//! `#[cfg(test)]` items. `parser_self_check` pins its behaviour on small snippets.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Files allowed over [`MAX_LINES`], each with the reason. Keep it short, and say why.
const LONG_FILES_ALLOWED: &[(&str, &str)] = &[];

const MAX_LINES: usize = 500;

// ---------------------------------------------------------------------------------------------
// The two rules
// ---------------------------------------------------------------------------------------------

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let files = source_files();
    let nodes: BTreeSet<String> = files.iter().filter_map(|f| f.module.clone()).collect();

    // (from, to) -> (first example "file:line", how many references)
    let mut edges: BTreeMap<(String, String), (String, usize)> = BTreeMap::new();
    for f in &files {
        let Some(from) = &f.module else { continue };
        // A literal or comment the lexer misread would shift every brace after it; unbalanced
        // braces are the cheap tell, and better a clear failure than a silently wrong graph.
        let mut depth = 0i64;
        for t in lex(&f.text) {
            match t.tok {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
            assert!(
                depth >= 0,
                "{}:{}: layout test's lexer lost track of braces here",
                f.rel,
                t.line
            );
        }
        assert_eq!(depth, 0, "{}: layout test's lexer lost track of braces", f.rel);
        let segs: Vec<String> = from.split("::").map(str::to_string).collect();
        for (to, line) in module_refs(&f.text, &segs, &nodes) {
            if &to == from {
                continue;
            }
            edges
                .entry((from.clone(), to))
                .and_modify(|e| e.1 += 1)
                .or_insert_with(|| (format!("{}:{line}", f.rel), 1));
        }
    }

    let mut report = String::new();
    for scc in strongly_connected(&nodes, edges.keys()) {
        let members: BTreeSet<&String> = scc.iter().collect();
        let inside: Vec<_> = edges
            .iter()
            .filter(|((a, b), _)| members.contains(a) && members.contains(b))
            .collect();
        let _ = writeln!(report, "\ncycle among {}:", scc.join(", "));
        let _ = writeln!(report, "  e.g. {}", shortest_cycle(&scc[0], &inside).join(" -> "));
        for ((a, b), (at, n)) in &inside {
            let more = if *n > 1 {
                format!(" (+{} more)", n - 1)
            } else {
                String::new()
            };
            let _ = writeln!(report, "  {a} -> {b}    {at}{more}");
        }
    }
    assert!(
        report.is_empty(),
        "modules under src/ import each other in a cycle (issue 12 layout rule 1); break each cycle \
         by moving what both sides need into a module that imports neither:\n{report}"
    );
}

#[test]
fn no_source_file_is_over_500_lines() {
    let files = source_files();
    let mut report = String::new();
    for f in &files {
        let lines = f.text.lines().count();
        if lines > MAX_LINES && !LONG_FILES_ALLOWED.iter().any(|(p, _)| *p == f.rel) {
            let _ = writeln!(report, "  {}: {lines} lines", f.rel);
        }
    }
    // An allowance outliving its reason would quietly let the file grow again.
    for (path, _) in LONG_FILES_ALLOWED {
        match files.iter().find(|f| f.rel == *path) {
            None => {
                let _ = writeln!(report, "  {path}: in LONG_FILES_ALLOWED but no such file");
            }
            Some(f) if f.text.lines().count() <= MAX_LINES => {
                let _ = writeln!(
                    report,
                    "  {path}: in LONG_FILES_ALLOWED but now within {MAX_LINES} lines"
                );
            }
            Some(_) => {}
        }
    }
    assert!(
        report.is_empty(),
        "source files over {MAX_LINES} lines (issue 12 layout rule 2); split them, or add them to \
         LONG_FILES_ALLOWED in tests/layout.rs with a reason:\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Source files and their modules
// ---------------------------------------------------------------------------------------------

struct SourceFile {
    /// Path relative to the crate, with `/`: `src/sync/deliver.rs`.
    rel: String,
    /// `sync::deliver`; `None` for the crate root (`lib.rs`, `main.rs`).
    module: Option<String>,
    text: String,
}

fn source_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    collect_rs(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            SourceFile {
                module: module_of(&rel),
                rel,
                text,
            }
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` -> `a::b`; `src/lib.rs`, `src/main.rs` -> `None`.
fn module_of(rel: &str) -> Option<String> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    if inner == "lib" || inner == "main" {
        return None;
    }
    let mut segs: Vec<&str> = inner.split('/').collect();
    if segs.last() == Some(&"mod") {
        segs.pop();
    }
    Some(segs.join("::"))
}

// ---------------------------------------------------------------------------------------------
// Lexer: just enough Rust to find paths without being fooled by comments and literals
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Tokens of `src`, without comments, literals (string, raw string, byte, char, number) or
/// lifetimes, each with its 1-based line.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let is_ident_start = |ch: char| ch.is_alphabetic() || ch == '_';
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            // `//`, `///`, `//!`: to the end of the line.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1, &mut line);
        } else if ch == '\'' {
            i = skip_char_or_lifetime(&c, i);
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw_string_follows = || {
                let mut k = i;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            };
            match word.as_str() {
                // r"..", r#".."#, br"..", cr"..": the sandbox and mapping JSON live in these.
                "r" | "br" | "cr" if raw_string_follows() => i = skip_raw_string(&c, i, &mut line),
                // r#ident: a raw identifier.
                "r" if at(i) == '#' && is_ident_start(at(i + 1)) => {
                    let start = i + 1;
                    i += 1;
                    while i < c.len() && is_ident(c[i]) {
                        i += 1;
                    }
                    out.push(Token {
                        tok: Tok::Ident(c[start..i].iter().collect()),
                        line,
                    });
                }
                "b" | "c" if at(i) == '"' => i = skip_string(&c, i + 1, &mut line),
                "b" if at(i) == '\'' => i = skip_char_or_lifetime(&c, i),
                _ => out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                }),
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// From just after an opening `"`, to just after the closing one.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// From the `#`s or `"` after `r`, to just after the closing `"` and as many `#`s.
fn skip_raw_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    i
}

/// At a `'`: a char literal (`'a'`, `'\n'`, `'\u{..}'`, `'"'`, `'{'`) or a lifetime / label
/// (`'a`, `'static`), both skipped whole.
fn skip_char_or_lifetime(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut k = i + 3; // past the quote, the backslash and the escaped char
        while k < c.len() && c[k] != '\'' && c[k] != '\n' {
            k += 1;
        }
        k + 1
    } else if at(i + 2) == '\'' {
        i + 3
    } else {
        let mut k = i + 1;
        while k < c.len() && (c[k].is_alphanumeric() || c[k] == '_') {
            k += 1;
        }
        k
    }
}

/// The tokens without `#[cfg(test)]` items: the attribute, any attributes after it, and the
/// item up to its `;` or through its matching `}`. Braces come from tokens, so ones in strings,
/// chars and comments no longer count.
fn strip_cfg_test(toks: Vec<Token>) -> Vec<Token> {
    let is = |k: usize, t: &Tok| toks.get(k).is_some_and(|x| &x.tok == t);
    let ident = |s: &str| Tok::Ident(s.to_string());
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let cfg_test = is(i, &Tok::Punct('#'))
            && is(i + 1, &Tok::Punct('['))
            && is(i + 2, &ident("cfg"))
            && is(i + 3, &Tok::Punct('('))
            && is(i + 4, &ident("test"))
            && is(i + 5, &Tok::Punct(')'))
            && is(i + 6, &Tok::Punct(']'));
        if !cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + 7;
        let mut depth = 0usize; // of ( [ {
        while j < toks.len() {
            match toks[j].tok {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        i = j;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Paths and what they refer to
// ---------------------------------------------------------------------------------------------

/// A path as written, with the module it is written in (the file's module, plus any inline
/// `mod x { .. }` it sits in, which is what `self` and `super` are relative to).
struct RawPath {
    segs: Vec<String>,
    scope: Vec<String>,
    line: usize,
    /// For a `use` leaf: the name it brings into scope (`x` in `use a::x`, `y` in `as y`).
    binding: Option<String>,
}

/// Every reference in `src` (the file of module `module`) to one of `nodes`, as
/// (module, line), self-references included. `#[cfg(test)]` items are left out.
fn module_refs(src: &str, module: &[String], nodes: &BTreeSet<String>) -> Vec<(String, usize)> {
    let toks = strip_cfg_test(lex(src));
    let paths = raw_paths(&toks, module);

    // Names a `use` bound to a whole module (`use crate::sync;`, `use super::{self, checks}`),
    // so that `sync::deliver::run` later in the file is seen as `sync::deliver`.
    let no_bindings = HashMap::new();
    let mut bindings = HashMap::new();
    for p in &paths {
        if let (Some(name), Some(abs)) = (&p.binding, absolute(&p.segs, &p.scope, &no_bindings, nodes))
            && name != "_"
            && nodes.contains(&abs.join("::"))
        {
            bindings.insert(name.clone(), abs);
        }
    }

    paths
        .iter()
        .filter_map(|p| {
            let abs = absolute(&p.segs, &p.scope, &bindings, nodes)?;
            // The longest prefix that is a module: `sync::deliver::send` is `sync::deliver`.
            (1..=abs.len())
                .rev()
                .map(|n| abs[..n].join("::"))
                .find(|m| nodes.contains(m))
                .map(|m| (m, p.line))
        })
        .collect()
}

/// The paths in `toks`: each `use` leaf, and each `a::b::c` elsewhere (its first segment not
/// itself after a `::`).
fn raw_paths(toks: &[Token], module: &[String]) -> Vec<RawPath> {
    let mut out = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new(); // inline `mod name {`, and its brace depth
    let mut depth = 0usize;
    let scope = |inline: &[(String, usize)]| {
        let mut s = module.to_vec();
        s.extend(inline.iter().map(|(n, _)| n.clone()));
        s
    };
    let tok = |k: usize| toks.get(k).map(|t| &t.tok);
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Punct('{'))) = (tok(i + 1), tok(i + 2)) {
                    inline.push((name.clone(), depth + 1));
                }
                i += 2; // `mod x;` names no path; a `{` is counted on the next turn
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(w) if w == "use" => {
                let mut leaves = Vec::new();
                let mut j = i + 1;
                parse_use_tree(toks, &mut j, Vec::new(), &mut leaves);
                let s = scope(&inline);
                for (segs, binding, line) in leaves {
                    out.push(RawPath {
                        segs,
                        scope: s.clone(),
                        line,
                        binding,
                    });
                }
                while j < toks.len() && toks[j].tok != Tok::Punct(';') {
                    j += 1;
                }
                i = j + 1;
            }
            Tok::Ident(first) if tok(i + 1) == Some(&Tok::PathSep) && (i == 0 || toks[i - 1].tok != Tok::PathSep) => {
                let mut segs = vec![first.clone()];
                let mut j = i + 1;
                while let (Some(Tok::PathSep), Some(Tok::Ident(next))) = (tok(j), tok(j + 1)) {
                    segs.push(next.clone());
                    j += 2;
                }
                out.push(RawPath {
                    segs,
                    scope: scope(&inline),
                    line: toks[i].line,
                    binding: None,
                });
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// One use tree (`a::b`, `a::{b, c::d}`, `a::*`, `a as b`, `a::{self}`), appending each leaf as
/// (path, name it binds, line of its last segment).
fn parse_use_tree(
    toks: &[Token],
    j: &mut usize,
    prefix: Vec<String>,
    leaves: &mut Vec<(Vec<String>, Option<String>, usize)>,
) {
    let mut segs = prefix;
    let mut line = toks.get(*j).map_or(0, |t| t.line);
    while let Some(t) = toks.get(*j) {
        match &t.tok {
            Tok::PathSep => *j += 1,
            Tok::Ident(w) if w != "as" => {
                segs.push(w.clone());
                line = t.line;
                *j += 1;
            }
            Tok::Punct('{') => {
                *j += 1;
                while let Some(t) = toks.get(*j) {
                    match t.tok {
                        Tok::Punct('}') => {
                            *j += 1;
                            break;
                        }
                        Tok::Punct(',') => *j += 1,
                        _ => {
                            let before = *j;
                            parse_use_tree(toks, j, segs.clone(), leaves);
                            if *j == before {
                                *j += 1; // something unexpected; never loop on it
                            }
                        }
                    }
                }
                return;
            }
            Tok::Punct('*') => {
                *j += 1;
                leaves.push((segs, None, line));
                return;
            }
            _ => break,
        }
    }
    if segs.is_empty() {
        return;
    }
    // `a::{self}` is `a` itself.
    if segs.last().is_some_and(|s| s == "self") && segs.len() > 1 {
        segs.pop();
    }
    let mut binding = segs.last().cloned();
    if let (
        Some(Tok::Ident(a)),
        Some(Token {
            tok: Tok::Ident(name), ..
        }),
    ) = (toks.get(*j).map(|t| &t.tok), toks.get(*j + 1))
        && a == "as"
    {
        binding = Some(name.clone());
        *j += 2;
    }
    leaves.push((segs, binding, line));
}

/// `segs` as an absolute path from the crate root, or `None` when it leaves the crate (std,
/// dependencies, local items) or cannot be told.
fn absolute(
    segs: &[String],
    scope: &[String],
    bindings: &HashMap<String, Vec<String>>,
    nodes: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let first = segs.first()?.as_str();
    let (mut base, rest) = match first {
        "crate" => (Vec::new(), &segs[1..]),
        "self" => (scope.to_vec(), &segs[1..]),
        "super" => {
            let mut base = scope.to_vec();
            let ups = segs.iter().take_while(|s| *s == "super").count();
            for _ in 0..ups {
                base.pop()?;
            }
            (base, &segs[ups..])
        }
        _ => {
            let mut child = scope.to_vec();
            child.push(first.to_string());
            if nodes.contains(&child.join("::")) {
                // A path relative to the current module, through one of its children.
                (scope.to_vec(), segs)
            } else if let Some(m) = bindings.get(first) {
                (m.clone(), &segs[1..])
            } else {
                return None;
            }
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

/// Strongly connected components of more than one module (Tarjan), members sorted.
fn strongly_connected<'a>(
    nodes: &BTreeSet<String>,
    edges: impl Iterator<Item = &'a (String, String)>,
) -> Vec<Vec<String>> {
    let names: Vec<&String> = nodes.iter().collect();
    let index_of: HashMap<&String, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut adj = vec![Vec::new(); names.len()];
    for (a, b) in edges {
        adj[index_of[a]].push(index_of[b]);
    }

    struct Tarjan<'g> {
        adj: &'g [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.adj[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                self.out.push(scc);
            }
        }
    }
    let n = names.len();
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    let mut sccs: Vec<Vec<String>> = t
        .out
        .into_iter()
        .filter(|s| s.len() > 1)
        .map(|s| {
            let mut m: Vec<String> = s.into_iter().map(|i| names[i].clone()).collect();
            m.sort();
            m
        })
        .collect();
    sccs.sort();
    sccs
}

/// A shortest cycle from `start` back to itself over `edges` (breadth-first), for the report.
/// An edge (from, to) with its first site (file, line).
type SitedEdge<'a> = (&'a (String, String), &'a (String, usize));

fn shortest_cycle(start: &str, edges: &[SitedEdge<'_>]) -> Vec<String> {
    let mut prev: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for ((a, b), _) in edges {
            if a != v {
                continue;
            }
            if b == start {
                // Walk back from `v` to `start`, then turn it round and close the loop.
                let mut path = vec![v.to_string()];
                let mut at = v;
                while at != start {
                    at = prev[at];
                    path.push(at.to_string());
                }
                path.reverse();
                path.push(start.to_string());
                return path;
            }
            if !prev.contains_key(b.as_str()) && b != start {
                prev.insert(b, v);
                queue.push_back(b);
            }
        }
    }
    vec![start.to_string()]
}

// ---------------------------------------------------------------------------------------------
// The parser, on small snippets
// ---------------------------------------------------------------------------------------------

#[test]
fn parser_self_check() {
    let nodes: BTreeSet<String> = [
        "sync",
        "sync::deliver",
        "sync::status",
        "store",
        "store::ledger",
        "money",
        "telemetry",
        "mapping",
        "mapping::samples",
        "x",
        "y",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let refs = |module: &str, src: &str| -> Vec<(String, usize)> {
        let segs: Vec<String> = module.split("::").map(String::from).collect();
        module_refs(src, &segs, &nodes)
    };
    let r = |m: &str, l: usize| (m.to_string(), l);

    // Grouped use over several lines, `self` in a group, nested groups; the line is the leaf's.
    assert_eq!(
        refs(
            "x",
            "use crate::{\n    sync::Context,\n    store::{self, ledger::Row},\n};\n"
        ),
        [r("sync", 2), r("store", 3), r("store::ledger", 3)]
    );
    // Longest prefix that is a module; `pub(crate)` is no path; `as` renames.
    assert_eq!(
        refs(
            "x",
            "pub(crate) use crate::sync::deliver::send as go;\nfn f() { crate::sync::Context::new(); }\n"
        ),
        [r("sync::deliver", 1), r("sync", 2)]
    );
    // `super::` and `self::`, grouped and inline, a child module named in a group, `super::super`.
    assert_eq!(
        refs(
            "sync::deliver",
            "use super::{Context, status};\nfn f() { super::read_start(); self::g(); }\n"
        ),
        [r("sync", 1), r("sync::status", 1), r("sync", 2), r("sync::deliver", 2)]
    );
    assert_eq!(
        refs("mapping::samples", "const A: &str = super::super::money::ZERO;"),
        [r("money", 1)]
    );
    // Comments, strings, raw strings and char literals hide nothing and invent nothing.
    let src = r####"// crate::x::a
/// crate::x::b
//! crate::x::c
/* crate::x::d /* nested crate::x::e */ crate::x::f */
const S: &str = "crate::x::g \" crate::x::h";
const R: &str = r#"{"k": "crate::x::i", "q": "}"}"#;
const B: &[u8] = br##"crate::x::j"#"##;
const C: char = '"'; const D: char = '{';
fn f<'a>(s: &'a str) -> &'static str { crate::y::k() }
"####;
    assert_eq!(refs("store", src), [r("y", 9)]);
    // `#[cfg(test)]` items are skipped through their matching brace, braces in literals aside.
    let src = "fn a() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::x;\n    fn t() { let s = \"}\"; let c = '}'; crate::x::f(); }\n}\nfn b() { crate::y::g(); }\n";
    assert_eq!(refs("store", src), [r("y", 8)]);
    // A parent calling its child by the child's name; a module imported then walked through.
    assert_eq!(
        refs(
            "sync",
            "pub use deliver::Stats;\nfn f() { deliver::run(); std::sync::Arc::new(()); }"
        ),
        [r("sync::deliver", 1), r("sync::deliver", 2)]
    );
    assert_eq!(
        refs("x", "use crate::sync;\nfn f() { sync::deliver::run(); }"),
        [r("sync", 1), r("sync::deliver", 2)]
    );
    // `self`/`super` inside an inline module are relative to it; `mod x;` is no reference.
    assert_eq!(
        refs(
            "telemetry",
            "mod status;\npub mod metric {\n    use super::mask;\n}\nfn f() { self::metric::A; }"
        ),
        [r("telemetry", 3), r("telemetry", 5)]
    );

    // Module naming and cycle detection.
    assert_eq!(module_of("src/sync/mod.rs").as_deref(), Some("sync"));
    assert_eq!(module_of("src/sync/deliver.rs").as_deref(), Some("sync::deliver"));
    assert_eq!(module_of("src/a/b/mod.rs").as_deref(), Some("a::b"));
    assert_eq!(module_of("src/lib.rs"), None);
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    let edges = [
        e("sync", "sync::deliver"),
        e("sync::deliver", "sync"),
        e("x", "y"),
        e("sync::deliver", "store"),
    ];
    assert_eq!(
        strongly_connected(&nodes, edges.iter()),
        [vec!["sync".to_string(), "sync::deliver".to_string()]]
    );
}
