//! `oidc-sidecar migrate apache`: turn an httpd + mod_auth_openidc configuration into the sidecar's TOML.
//!
//! Pure text in, text out: the CLI reads the file, prints [`MigrateOutput::toml`] on stdout and the warnings on
//! stderr. Nothing here touches the file system or the network, so every rule is pinned by a unit test.
//!
//! Three rules shape the output, because a migration tool is where auth bypasses are born:
//! 1. **Secrets are never copied.** `OIDCClientSecret`, `OIDCCryptoPassphrase`, `OIDCRedisCachePassword` and every
//!    other secret-bearing directive become `${ENV_VAR}` references with a comment saying where to set them; the
//!    original value appears nowhere in the output, not even in comments.
//! 2. **Fail closed.** When an Apache rule cannot be expressed (a regex `Require claim`, `Require ip`, a `<RequireAny>`
//!    across different claims), the route gets a stricter rule, never a looser one: at worst a claim requirement no
//!    token can meet (`migrate_unmapped`), which the operator must replace by hand.
//! 3. **Nothing is dropped silently.** Every directive that was not mapped gets a `# migrate:` comment in the
//!    section it belongs to, and everything that changes behaviour is also in [`MigrateOutput::warnings`].

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

/// What `migrate apache` produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutput {
    /// The sidecar config, in the documented file shape, with `# migrate:` comments.
    pub toml: String,
    /// Behaviour changes and manual steps, one sentence each (printed on stderr by the CLI).
    pub warnings: Vec<String>,
    /// Environment variables the TOML references (`${NAME}`), which the operator must provide.
    pub env_vars: Vec<String>,
}

/// Claim name used for requirements that could not be translated: no real token carries it, so the route denies
/// everyone until the operator replaces it.
pub const UNMAPPED_CLAIM: &str = "migrate_unmapped";

/// Convert the text of an httpd configuration file.
pub fn migrate_apache(conf_text: &str) -> MigrateOutput {
    let (nodes, parse_notes) = parse(conf_text);
    let model = Model::collect(&nodes);
    let mut conv = Converter::default();
    for (line, note) in parse_notes {
        conv.warn(format!("line {line}: {note}"));
        conv.top.push(comment(&format!("line {line}: {note}")));
    }
    conv.run(&model);
    conv.finish()
}

// === parsing ===

/// One directive on one logical line (continuations joined).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    line: usize,
    name: String,
    args: Vec<String>,
}

impl Directive {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    /// The directive as shown in comments, with the arguments of secret-bearing directives redacted.
    fn shown(&self) -> String {
        if is_sensitive(&self.name) {
            return format!("{} <value not copied>", self.name);
        }
        if mentions_secret_directive(&self.name) {
            return "<directive not copied: it looks like it holds a secret>".to_string();
        }
        let mut s = self.name.clone();
        for a in &self.args {
            if mentions_secret_directive(a) {
                s.push_str(" <rest not copied>");
                break;
            }
            s.push(' ');
            if a.is_empty() || a.chars().any(char::is_whitespace) {
                s.push('"');
                s.push_str(a);
                s.push('"');
            } else {
                s.push_str(a);
            }
        }
        if s.chars().count() > 160 {
            let cut: String = s.chars().take(157).collect();
            format!("{cut}...")
        } else {
            s
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Directive(Directive),
    Section(Section),
}

#[derive(Debug, Clone)]
struct Section {
    line: usize,
    kind: String,
    args: Vec<String>,
    children: Vec<Node>,
}

/// `OIDCClientSecret`, `OIDCCryptoPassphrase`, ...: a word that names a secret-bearing directive.
fn is_secret_directive(word: &str) -> bool {
    word.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("oidc")) && is_sensitive(word)
}

/// Does this text hold a word naming a secret-bearing directive (quotes and whitespace separate words)?
fn mentions_secret_directive(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'').any(is_secret_directive)
}

/// Logical lines, except that a physical line starting with a secret-bearing directive always starts a new one,
/// even after a stray `\` or inside an unclosed quote: its value must be treated (and redacted) as a secret.
fn split_joined_secrets(text: &str, notes: &mut Vec<(usize, String)>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, text, breaks) in logical_lines_with_breaks(text) {
        let mut from = 0;
        let mut from_line = line;
        for (offset, phys) in breaks {
            let Some(tail) = text.get(offset..) else { continue };
            let first = tail.split_whitespace().next().unwrap_or_default();
            if !is_secret_directive(first) {
                continue;
            }
            if let Some(head) = text.get(from..offset) {
                if !head.trim().is_empty() {
                    out.push((from_line, head.trim().to_string()));
                }
            }
            notes.push((phys, format!("{first} is joined to the line before by a trailing `\\`: read on its own")));
            from = offset;
            from_line = phys;
        }
        match text.get(from..) {
            Some(rest) if from > 0 => out.push((from_line, rest.trim().to_string())),
            _ => out.push((line, text)),
        }
    }
    out
}

/// Directive names whose arguments are secrets (case-insensitive substring match).
fn is_sensitive(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    ["secret", "passphrase", "password", "sharedkeys", "bearertoken", "privatekey"].iter().any(|s| l.contains(s))
}

/// Join `\`-continued lines; drop comments and blank lines. Returns (first physical line, text).
#[cfg(test)]
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    logical_lines_with_breaks(text).into_iter().map(|(l, t, _)| (l, t)).collect()
}

/// One logical line: its first physical line, its text, and where each continuation starts in that text
/// (byte offset, physical line).
type LogicalLine = (usize, String, Vec<(usize, usize)>);

/// Join `\`-continued lines; drop comments and blank lines.
fn logical_lines_with_breaks(text: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut breaks = Vec::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim_end();
        if buf.is_empty() {
            start = i + 1;
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        } else {
            breaks.push((buf.len(), i + 1));
        }
        if let Some(cont) = line.strip_suffix('\\') {
            buf.push_str(cont);
            buf.push(' ');
            continue;
        }
        buf.push_str(line);
        let lead = buf.len() - buf.trim_start().len();
        let text = buf.trim().to_string();
        let shifted = breaks.drain(..).map(|(o, l): (usize, usize)| (o.saturating_sub(lead), l)).collect();
        buf.clear();
        out.push((start, text, shifted));
    }
    if !buf.trim().is_empty() {
        let lead = buf.len() - buf.trim_start().len();
        let shifted = breaks.drain(..).map(|(o, l): (usize, usize)| (o.saturating_sub(lead), l)).collect();
        out.push((start, buf.trim().to_string(), shifted));
    }
    out
}

/// Split arguments like httpd's `ap_getword_conf`: whitespace-separated, `"..."` or `'...'` quoted, `\"` inside
/// double quotes is a literal quote.
fn split_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut arg = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    arg.push(first);
                    chars.next();
                } else if c == first {
                    break;
                } else {
                    arg.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg);
    }
    args
}

/// Build the section tree. Unbalanced sections are reported, never fatal: a half-understood config still gives a
/// useful (and fail-closed) draft.
fn parse(text: &str) -> (Vec<Node>, Vec<(usize, String)>) {
    let mut notes = Vec::new();
    // Stack of open sections; the root is a pseudo-section.
    let mut stack: Vec<Section> = vec![Section { line: 0, kind: String::new(), args: vec![], children: vec![] }];
    for (line, text) in split_joined_secrets(text, &mut notes) {
        if let Some(rest) = text.strip_prefix("</") {
            let kind = rest.trim_end_matches('>').trim().to_string();
            if let Some(pos) = stack.iter().rposition(|s| s.line > 0 && s.kind.eq_ignore_ascii_case(&kind)) {
                while stack.len() > pos + 1 {
                    if let Some(inner) = stack.pop() {
                        notes.push((inner.line, format!("<{}> is never closed", inner.kind)));
                        push_child(&mut stack, Node::Section(inner));
                    }
                }
                if let Some(done) = stack.pop() {
                    push_child(&mut stack, Node::Section(done));
                }
            } else {
                notes.push((line, format!("</{kind}> closes nothing; ignored")));
            }
        } else if let Some(rest) = text.strip_prefix('<') {
            let inner = rest.strip_suffix('>').unwrap_or(rest);
            let mut parts = split_args(inner);
            if parts.is_empty() {
                notes.push((line, "empty section tag; ignored".to_string()));
                continue;
            }
            let kind = parts.remove(0);
            stack.push(Section { line, kind, args: parts, children: vec![] });
        } else {
            let mut parts = split_args(&text);
            if parts.is_empty() {
                continue;
            }
            let name = parts.remove(0);
            // Never read a secret-bearing directive as an argument of another (same line): drop the rest.
            if let Some(pos) = parts.iter().position(|a| is_secret_directive(a)) {
                notes.push((line, format!("{name} is followed by another directive on the same line; ignored from there")));
                parts.truncate(pos);
            }
            push_child(&mut stack, Node::Directive(Directive { line, name, args: parts }));
        }
    }
    while stack.len() > 1 {
        if let Some(inner) = stack.pop() {
            notes.push((inner.line, format!("<{}> is never closed", inner.kind)));
            push_child(&mut stack, Node::Section(inner));
        }
    }
    let root = stack.pop().map(|s| s.children).unwrap_or_default();
    (root, notes)
}

fn push_child(stack: &mut [Section], node: Node) {
    if let Some(top) = stack.last_mut() {
        top.children.push(node);
    }
}

// === model: scopes and path blocks ===

/// The main server or one `<VirtualHost>`.
#[derive(Debug, Default)]
struct Scope {
    line: usize,
    is_vhost: bool,
    vhost_args: Vec<String>,
    directives: Vec<Directive>,
    paths: Vec<PathBlock>,
    /// Sections we do not understand at this level: (line, tag).
    unknown_sections: Vec<(usize, String)>,
}

/// One `<Location>`, `<LocationMatch>`, `<Directory>`, `<Proxy>`, ... block.
#[derive(Debug)]
struct PathBlock {
    line: usize,
    kind: String,
    args: Vec<String>,
    directives: Vec<Directive>,
    require: Vec<ReqNode>,
    unknown_sections: Vec<(usize, String)>,
}

#[derive(Debug)]
enum ReqNode {
    Require(Directive),
    /// `<RequireAll>`, `<RequireAny>`, `<RequireNone>`.
    Group { line: usize, kind: String, children: Vec<ReqNode> },
}

#[derive(Debug, Default)]
struct Model {
    main: Scope,
    vhosts: Vec<Scope>,
}

fn is_conditional(kind: &str) -> bool {
    ["ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection", "else", "elseif", "if"]
        .contains(&kind.to_ascii_lowercase().as_str())
}

fn is_path_section(kind: &str) -> bool {
    ["location", "locationmatch", "directory", "directorymatch", "proxy", "proxymatch", "files", "filesmatch"]
        .contains(&kind.to_ascii_lowercase().as_str())
}

fn is_require_group(kind: &str) -> bool {
    ["requireall", "requireany", "requirenone"].contains(&kind.to_ascii_lowercase().as_str())
}

impl Model {
    fn collect(nodes: &[Node]) -> Model {
        let mut model = Model::default();
        let mut main = Scope::default();
        collect_scope(nodes, &mut main, &mut model.vhosts, true);
        model.main = main;
        model
    }
}

fn collect_scope(nodes: &[Node], scope: &mut Scope, vhosts: &mut Vec<Scope>, top: bool) {
    for node in nodes {
        match node {
            Node::Directive(d) => scope.directives.push(d.clone()),
            Node::Section(s) if is_conditional(&s.kind) => collect_scope(&s.children, scope, vhosts, top),
            Node::Section(s) if top && s.kind.eq_ignore_ascii_case("virtualhost") => {
                let mut v = Scope { line: s.line, is_vhost: true, vhost_args: s.args.clone(), ..Scope::default() };
                collect_scope(&s.children, &mut v, vhosts, false);
                vhosts.push(v);
            }
            Node::Section(s) if is_path_section(&s.kind) => {
                let mut pb = PathBlock {
                    line: s.line,
                    kind: s.kind.clone(),
                    args: s.args.clone(),
                    directives: vec![],
                    require: vec![],
                    unknown_sections: vec![],
                };
                collect_path(&s.children, &mut pb);
                scope.paths.push(pb);
            }
            Node::Section(s) => scope.unknown_sections.push((s.line, s.kind.clone())),
        }
    }
}

fn collect_path(nodes: &[Node], pb: &mut PathBlock) {
    for node in nodes {
        match node {
            Node::Directive(d) if d.is("Require") => pb.require.push(ReqNode::Require(d.clone())),
            Node::Directive(d) => pb.directives.push(d.clone()),
            Node::Section(s) if is_conditional(&s.kind) => collect_path(&s.children, pb),
            Node::Section(s) if is_require_group(&s.kind) => {
                let children = collect_req(&s.children, pb);
                pb.require.push(ReqNode::Group { line: s.line, kind: s.kind.clone(), children })
            }
            Node::Section(s) => pb.unknown_sections.push((s.line, s.kind.clone())),
        }
    }
}

fn collect_req(nodes: &[Node], pb: &mut PathBlock) -> Vec<ReqNode> {
    let mut out = Vec::new();
    for node in nodes {
        match node {
            Node::Directive(d) if d.is("Require") => out.push(ReqNode::Require(d.clone())),
            Node::Directive(d) => pb.directives.push(d.clone()),
            Node::Section(s) if is_require_group(&s.kind) => {
                out.push(ReqNode::Group { line: s.line, kind: s.kind.clone(), children: collect_req(&s.children, pb) })
            }
            Node::Section(s) if is_conditional(&s.kind) => out.extend(collect_req(&s.children, pb)),
            Node::Section(s) => pb.unknown_sections.push((s.line, s.kind.clone())),
        }
    }
    out
}

// === authorization: Require trees to route access ===

/// What a route demands, in the sidecar's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    Public,
    Authenticated,
    Require(Reqs),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Reqs {
    roles_any: Vec<String>,
    roles_all: Vec<String>,
    groups_any: Vec<String>,
    scopes_any: Vec<String>,
    scopes_all: Vec<String>,
    /// (claim, "equals" | "contains", value)
    claims: Vec<(String, &'static str, String)>,
    /// Rules that could not be translated; rendered as an unsatisfiable claim rule.
    unmapped: Vec<String>,
}

impl Reqs {
    fn only_unmapped(&self) -> bool {
        !self.unmapped.is_empty()
            && self.roles_any.is_empty()
            && self.roles_all.is_empty()
            && self.groups_any.is_empty()
            && self.scopes_any.is_empty()
            && self.scopes_all.is_empty()
            && self.claims.is_empty()
    }

    /// A requirement on one value of one kind, which can join others of its kind in an any-of list.
    fn as_atom(&self) -> Option<(&'static str, String)> {
        let count = self.roles_any.len()
            + self.roles_all.len()
            + self.groups_any.len()
            + self.scopes_any.len()
            + self.scopes_all.len()
            + self.claims.len()
            + self.unmapped.len();
        if count != 1 {
            return None;
        }
        if let Some(r) = self.roles_any.first().or(self.roles_all.first()) {
            return Some(("roles", r.clone()));
        }
        if let Some(g) = self.groups_any.first() {
            return Some(("groups", g.clone()));
        }
        if let Some(s) = self.scopes_any.first().or(self.scopes_all.first()) {
            return Some(("scopes", s.clone()));
        }
        None
    }

    /// Both requirements must hold. Two any-of lists of the same kind cannot be combined in one route: the second
    /// one is kept as an untranslatable rule (fail closed) and reported.
    fn and(mut self, other: Reqs, warnings: &mut Vec<String>) -> Reqs {
        // roles and scopes have an all-of list: single values go there.
        for (kind, mine, all, theirs) in [
            ("roles", &mut self.roles_any, &mut self.roles_all, other.roles_any),
            ("scopes", &mut self.scopes_any, &mut self.scopes_all, other.scopes_any),
        ] {
            if theirs.is_empty() {
                continue;
            }
            if mine.is_empty() {
                *mine = theirs;
            } else if theirs.len() == 1 {
                all.extend(theirs);
            } else if mine.len() == 1 {
                all.append(mine);
                *mine = theirs;
            } else {
                let text = format!("{kind} any of {}", theirs.join(","));
                warnings.push(format!(
                    "two separate any-of lists of {kind} must both hold; only one fits a route: the second ({text}) \
                     was replaced by a rule nobody meets: split the route by hand"
                ));
                self.unmapped.push(text);
            }
        }
        // groups has no all-of list: a single extra group becomes a `contains` claim rule.
        if !other.groups_any.is_empty() {
            if self.groups_any.is_empty() {
                self.groups_any = other.groups_any;
            } else if other.groups_any.len() == 1 || self.groups_any.len() == 1 {
                let single = if other.groups_any.len() == 1 {
                    other.groups_any
                } else {
                    std::mem::replace(&mut self.groups_any, other.groups_any)
                };
                for g in single {
                    self.claims.push(("groups".to_string(), "contains", g));
                }
            } else {
                let text = format!("groups any of {}", other.groups_any.join(","));
                warnings.push(format!(
                    "two separate any-of lists of groups must both hold; only one fits a route: the second ({text}) \
                     was replaced by a rule nobody meets: split the route by hand"
                ));
                self.unmapped.push(text);
            }
        }
        self.roles_all.extend(other.roles_all);
        self.scopes_all.extend(other.scopes_all);
        self.claims.extend(other.claims);
        self.unmapped.extend(other.unmapped);
        self
    }
}

/// Claims that are arrays (or space-separated lists) in common providers: compared with `contains`.
const MULTI_VALUED: &[&str] = &["amr", "aud", "wids", "acrs", "realm_access.roles", "cognito:groups", "memberof"];

/// `Require claim name:value` (one term).
fn claim_term(spec: &str) -> Result<Reqs, String> {
    let colon = spec.find(':');
    let tilde = spec.find('~');
    let regex = matches!((colon, tilde), (Some(c), Some(t)) if t < c) || (colon.is_none() && tilde.is_some());
    if regex {
        return Err(format!("claim {spec} (regular expression)"));
    }
    let Some(c) = colon else {
        return Err(format!("claim {spec} (no name:value)"));
    };
    let (name, value) = (&spec[..c], &spec[c + 1..]);
    if name.is_empty() {
        return Err(format!("claim {spec} (empty claim name)"));
    }
    let mut r = Reqs::default();
    match name {
        "roles" => r.roles_any.push(value.to_string()),
        "groups" => r.groups_any.push(value.to_string()),
        "scp" | "scope" => r.scopes_any.push(value.to_string()),
        _ if MULTI_VALUED.contains(&name) || name.starts_with("resource_access.") => {
            r.claims.push((name.to_string(), "contains", value.to_string()))
        }
        _ => r.claims.push((name.to_string(), "equals", value.to_string())),
    }
    Ok(r)
}

/// One `Require` line.
fn require_line(d: &Directive, warnings: &mut Vec<String>) -> Access {
    let what = d.args.first().map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    let rest = d.args.get(1..).unwrap_or(&[]);
    let unmapped = |text: String, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "line {}: `{}` has no equivalent: the route now requires a claim nobody has ({UNMAPPED_CLAIM}); \
             replace it by hand",
            d.line,
            d.shown()
        ));
        Access::Require(Reqs { unmapped: vec![text], ..Reqs::default() })
    };
    match what.as_str() {
        "valid-user" => Access::Authenticated,
        "all" if rest.first().is_some_and(|a| a.eq_ignore_ascii_case("granted")) => Access::Public,
        "claim" if !rest.is_empty() => {
            // Several claims on one line: any of them (mod_auth_openidc matches each in turn).
            let mut terms = Vec::new();
            for spec in rest {
                match claim_term(spec) {
                    Ok(r) => terms.push(Access::Require(r)),
                    Err(text) => terms.push(unmapped(text, warnings)),
                }
            }
            any_of(terms, d.line, warnings)
        }
        _ => unmapped(d.args.join(" "), warnings),
    }
}

fn eval_nodes(nodes: &[ReqNode], all: bool, line: usize, warnings: &mut Vec<String>) -> Access {
    let items: Vec<Access> = nodes.iter().map(|n| eval_node(n, warnings)).collect();
    if all {
        all_of(items, warnings)
    } else {
        any_of(items, line, warnings)
    }
}

fn eval_node(node: &ReqNode, warnings: &mut Vec<String>) -> Access {
    match node {
        ReqNode::Require(d) => {
            if d.arg(0).is_some_and(|a| a.eq_ignore_ascii_case("not")) {
                warnings.push(format!(
                    "line {}: `{}`: negated requirements have no equivalent: the route now requires a claim nobody \
                     has ({UNMAPPED_CLAIM})",
                    d.line,
                    d.shown()
                ));
                return Access::Require(Reqs { unmapped: vec![d.args.join(" ")], ..Reqs::default() });
            }
            require_line(d, warnings)
        }
        ReqNode::Group { line, kind, children } => match kind.to_ascii_lowercase().as_str() {
            "requireall" => eval_nodes(children, true, *line, warnings),
            "requireany" => eval_nodes(children, false, *line, warnings),
            _ => {
                warnings.push(format!(
                    "line {line}: <{kind}> has no equivalent: the route now requires a claim nobody has \
                     ({UNMAPPED_CLAIM})"
                ));
                Access::Require(Reqs { unmapped: vec![format!("<{kind}>")], ..Reqs::default() })
            }
        },
    }
}

/// Apache's `<RequireAny>` (and several `Require` lines in one block). Only alternatives of one kind (roles, groups
/// or scopes) fit one route; anything else becomes "all of them" (stricter) and is reported.
fn any_of(items: Vec<Access>, line: usize, warnings: &mut Vec<String>) -> Access {
    if items.is_empty() {
        return Access::Authenticated;
    }
    if items.contains(&Access::Public) {
        return Access::Public;
    }
    let total = items.len();
    // Untranslatable alternatives are dropped when others remain: fewer ways in, never more.
    let (dropped, mut items): (Vec<Access>, Vec<Access>) =
        items.into_iter().partition(|a| matches!(a, Access::Require(r) if r.only_unmapped()));
    if items.is_empty() {
        let mut r = Reqs::default();
        for d in dropped {
            if let Access::Require(q) = d {
                r.unmapped.extend(q.unmapped);
            }
        }
        if r.unmapped.len() > 1 {
            r.unmapped = vec![format!("any of: {}", r.unmapped.join(" | "))];
        }
        return Access::Require(r);
    }
    if items.len() < total {
        warnings.push(format!(
            "line {line}: alternatives that have no equivalent were dropped from an any-of requirement \
             (the remaining ones are still required)"
        ));
    }
    if items.contains(&Access::Authenticated) {
        return Access::Authenticated;
    }
    if items.len() == 1 {
        return items.remove(0);
    }
    let reqs: Vec<Reqs> = items
        .into_iter()
        .filter_map(|a| match a {
            Access::Require(r) => Some(r),
            _ => None,
        })
        .collect();
    let atoms: Vec<(&'static str, String)> = reqs.iter().filter_map(Reqs::as_atom).collect();
    if atoms.len() == reqs.len() && atoms.iter().all(|(k, _)| *k == atoms[0].0) {
        let values: Vec<String> = atoms.into_iter().map(|(_, v)| v).collect();
        let mut r = Reqs::default();
        match reqs_kind(&reqs[0]) {
            "roles" => r.roles_any = values,
            "groups" => r.groups_any = values,
            _ => r.scopes_any = values,
        }
        return Access::Require(r);
    }
    warnings.push(format!(
        "line {line}: Apache accepted any one of several different claim rules; a route can only say \"any of\" within \
         one kind (roles, groups or scopes), so the route now requires ALL of them (stricter): split it or use one \
         app role"
    ));
    let mut acc = Reqs::default();
    for r in reqs {
        acc = acc.and(r, warnings);
    }
    Access::Require(acc)
}

fn reqs_kind(r: &Reqs) -> &'static str {
    r.as_atom().map(|(k, _)| k).unwrap_or("claims")
}

/// Apache's `<RequireAll>`.
fn all_of(items: Vec<Access>, warnings: &mut Vec<String>) -> Access {
    let mut acc: Option<Reqs> = None;
    let mut authenticated = false;
    for item in items {
        match item {
            Access::Public => {}
            Access::Authenticated => authenticated = true,
            Access::Require(r) => {
                acc = Some(match acc {
                    None => r,
                    Some(a) => a.and(r, warnings),
                })
            }
        }
    }
    match acc {
        Some(r) => Access::Require(r),
        None if authenticated => Access::Authenticated,
        None => Access::Public,
    }
}

// === TOML rendering helpers ===

fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_arr(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", parts.join(", "))
}

fn kv(key: &str, value: &str) -> String {
    format!("{key} = {}", toml_str(value))
}

fn comment(text: &str) -> String {
    format!("# migrate: {}", comment_safe(text))
}

/// TOML comments may hold any character but controls (tab aside): escape those so a stray byte in the httpd
/// file cannot break the output.
fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// Seconds as a humantime duration ("300" -> "5m").
fn humantime_secs(n: u64) -> String {
    if n > 0 && n.is_multiple_of(3600) {
        format!("{}h", n / 3600)
    } else if n > 0 && n.is_multiple_of(60) {
        format!("{}m", n / 60)
    } else {
        format!("{n}s")
    }
}

/// Keeps `${...}` in copied (non-secret) values from being taken for our own environment references by surprise.
fn note_dollar(value: &str, line: usize, warnings: &mut Vec<String>) {
    if value.contains("${") {
        warnings.push(format!(
            "line {line}: `{value}` uses an httpd variable; the sidecar reads ${{NAME}} from its environment: set it \
             there"
        ));
    }
}

// === conversion ===

#[derive(Debug, Default)]
struct RouteOut {
    /// 0 = exact, 1 = prefix; then longer paths first.
    order: (u8, std::cmp::Reverse<usize>),
    key: String,
    lines: Vec<String>,
    /// Any route that does not let anonymous callers in (decides `login`).
    protected: bool,
    bearer_only: bool,
    deny_401: bool,
}

#[derive(Debug, Default)]
struct HostOut {
    name: String,
    head: Vec<String>,
    security: Vec<String>,
    routes: Vec<RouteOut>,
}

#[derive(Default)]
struct Converter {
    top: Vec<String>,
    server: Vec<String>,
    provider: Vec<String>,
    session: Vec<String>,
    session_paths: Vec<String>,
    hosts: Vec<HostOut>,
    warnings: Vec<String>,
    env: BTreeSet<String>,
    /// Lines of directives that were mapped or commented specifically.
    used: HashSet<usize>,
    /// Host part of an absolute OIDCRedirectURI, for the host's external_url.
    redirect_authority: Option<(String, String)>,
    client_id: String,
}

/// Why an httpd directive is not needed behind the ALB (or which sidecar setting replaces it).
fn not_needed_reason(name: &str) -> Option<&'static str> {
    let l = name.to_ascii_lowercase();
    if l.starts_with("ssl") {
        return Some("TLS ends at the ALB (ACM certificate); the sidecar speaks plain HTTP on port 80");
    }
    Some(match l.as_str() {
        "listen" | "namevirtualhost" | "port" => "the sidecar listens on server.listen (0.0.0.0:80 behind the ALB)",
        "loadmodule" | "loadfile" | "serverroot" | "user" | "group" | "pidfile" | "mutex" | "defaultruntimedir"
        | "serveradmin" | "servertokens" | "serversignature" | "traceenable" | "addefaultcharset" | "typesconfig"
        | "hostnamelookups" | "enablesendfile" | "enablemmap" => "Apache process setting",
        "errorlog" | "customlog" | "loglevel" | "logformat" | "transferlog" | "errorlogformat" => {
            "the sidecar logs JSON lines to stdout (awslogs); see server.log_format"
        }
        "proxyrequests" | "proxyvia" | "proxyaddheaders" | "proxypassreverse" | "proxypassreversecookiedomain"
        | "proxypassreversecookiepath" | "proxypreservehost" | "proxyerroroverride" | "proxybadheader" => {
            "reverse-proxy plumbing the sidecar does itself (it forwards Host and adds X-Forwarded-*; it does not \
             rewrite paths, so nothing needs reversing)"
        }
        "keepalive" | "keepalivetimeout" | "maxkeepaliverequests" | "timeout" | "startservers" | "minspareservers"
        | "maxspareservers" | "maxrequestworkers" | "maxclients" | "serverlimit" | "threadsperchild"
        | "maxconnectionsperchild" | "maxrequestsperchild" | "threadlimit" => {
            "Apache worker tuning; the sidecar's are server.threads and the upstream_* timeouts"
        }
        "options" | "allowoverride" | "directoryindex" | "indexoptions" | "adddefaultcharset" | "addtype"
        | "addhandler" | "addoutputfilterbytype" | "setoutputfilter" => {
            "file-serving detail; static_root serves the SPA (index.html fallback, no listings, precompressed files)"
        }
        "oidcstripcookies" => "the sidecar never forwards its own cookies upstream",
        "oidccookiehttponly" | "oidccookiesamesite" | "oidccookiepath" | "oidcsessioncookiechunksize"
        | "oidcstatemaxnumberofcookies" | "oidcstatecookieprefix" | "oidcstatetimeout" => {
            "the sidecar's cookies are fixed: HttpOnly, Secure, SameSite=Lax, Path=/, bounded state cookies"
        }
        "oidcsslvalidateserver" | "oidccabundlepath" | "oidcoauthsslvalidateserver" => {
            "the sidecar always validates the provider's TLS certificate against the system roots"
        }
        "oidchttptimeoutlong" | "oidchttptimeoutshort" | "oidccacheshmmax" | "oidccacheshmentrysizemax"
        | "oidccachedir" | "oidccachefilecleaninterval" | "oidcredis cacheconnecttimeout" | "oidcrediscachetimeout"
        | "oidccacheencrypt" | "oidcproviderfmetadatarefreshinterval" | "oidcprovidermetadatarefreshinterval"
        | "oidcjwksrefreshinterval" => "cache/timeout tuning that the sidecar does itself (provider.jwks_refresh)",
        "oidcprovideruserinfoendpoint" | "oidcuserinforefreshinterval" => {
            "the sidecar takes claims from the ID and access tokens and does not call the userinfo endpoint"
        }
        "oidcproviderendsessionendpoint" | "oidcproviderauthorizationendpoint" | "oidcprovidertokenendpoint"
        | "oidcproviderjwksuri" => "the sidecar reads the endpoints from the discovery document",
        _ => return None,
    })
}

impl Converter {
    fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    fn env_ref(&mut self, name: &str) -> String {
        self.env.insert(name.to_string());
        format!("${{{name}}}")
    }

    fn mark(&mut self, d: &Directive) {
        self.used.insert(d.line);
    }

    /// The last occurrence of a directive in the given scopes, most specific first.
    fn find<'a>(&mut self, scopes: &[&'a Scope], name: &str) -> Option<&'a Directive> {
        for scope in scopes {
            if let Some(d) = scope.directives.iter().rev().find(|d| d.is(name)) {
                // Earlier duplicates in the same scope are overridden: mark them too.
                for dup in scope.directives.iter().filter(|x| x.is(name)) {
                    self.used.insert(dup.line);
                }
                return Some(d);
            }
        }
        None
    }

    /// Provider-wide directives: the main server first, else the first virtual host that has them.
    fn find_global<'a>(&mut self, m: &'a Model, name: &str) -> Option<&'a Directive> {
        if let Some(d) = self.find(&[&m.main], name) {
            return Some(d);
        }
        let mut found: Option<&'a Directive> = None;
        for v in &m.vhosts {
            if let Some(d) = v.directives.iter().rev().find(|d| d.is(name)) {
                for dup in v.directives.iter().filter(|x| x.is(name)) {
                    self.used.insert(dup.line);
                }
                match found {
                    None => found = Some(d),
                    Some(f) if f.args != d.args => {
                        let msg = format!(
                            "line {}: {} differs between virtual hosts (line {} is used): one sidecar has one \
                             provider and one session setup; run one sidecar per service",
                            d.line, d.name, f.line
                        );
                        self.warn(msg.clone());
                        self.top.push(comment(&msg));
                    }
                    Some(_) => {}
                }
            }
        }
        found
    }

    fn run(&mut self, m: &Model) {
        self.top.push(
            "# Generated by `oidc-sidecar migrate apache`. Review every `# migrate:` line, then run `oidc-sidecar check`."
                .to_string(),
        );
        self.map_server(m);
        self.map_provider(m);
        self.map_session(m);
        self.map_hosts(m);
        self.sweep(m);
    }

    fn map_server(&mut self, m: &Model) {
        self.server.push(kv("listen", "0.0.0.0:80"));
        self.server.push(format!("{}  # the ALB target group's health check path", kv("health_path", "/healthz")));
        self.server.push("# trusted_proxies = [\"10.0.0.0/16\"]   # the ALB's subnets: needed to believe X-Forwarded-*".to_string());
        if let Some(d) = self.find_global(m, "OIDCXForwardedHeaders") {
            self.mark(d);
            self.server.push(comment(&format!(
                "line {}: {}: set trusted_proxies to the ALB's subnets instead; X-Forwarded-* from anyone else is \
                 ignored",
                d.line,
                d.shown()
            )));
        }
        if let Some(d) = self.find_global(m, "ProxyTimeout") {
            self.mark(d);
            match d.arg(0).and_then(|a| a.parse::<u64>().ok()) {
                Some(n) => self.server.push(kv("upstream_read_timeout", &humantime_secs(n))),
                None => self.server.push(comment(&format!("line {}: {}: not a number of seconds", d.line, d.shown()))),
            }
        }
    }

    fn map_provider(&mut self, m: &Model) {
        let metadata = self.find_global(m, "OIDCProviderMetadataURL").cloned();
        let issuer_d = self.find_global(m, "OIDCProviderIssuer").cloned();
        let jwks = self.find_global(m, "OIDCOAuthVerifyJwksUri").cloned();
        let oauth_issuer = self.find_global(m, "OIDCOAuthVerifyIssuer").cloned();
        let oauth_meta = self.find_global(m, "OIDCOAuthServerMetadataURL").cloned();
        let mut tenant: Option<String> = None;

        let set_tenant = |conv: &mut Converter, tid: &str, d: &Directive, v1: bool| -> Option<String> {
            if is_guid(tid) {
                conv.provider.push(kv("tenant_id", tid));
                conv.provider.push(comment(&format!(
                    "line {}: {}: Entra ID tenant {tid}: issuer https://login.microsoftonline.com/{tid}/v2.0, v1 \
                     tokens (https://sts.windows.net/{tid}/) also accepted, tid checked{}",
                    d.line,
                    d.name,
                    if v1 { "; the v1 metadata URL was replaced by the v2 one" } else { "" }
                )));
                Some(tid.to_string())
            } else {
                let r = conv.env_ref("ENTRA_TENANT_ID");
                conv.provider.push(kv("tenant_id", &r));
                let msg = format!(
                    "line {}: {} names the tenant `{tid}`, not a tenant GUID: set ENTRA_TENANT_ID to the directory \
                     (tenant) id; multi-tenant (common/organizations) sign-in is not supported",
                    d.line, d.name
                );
                conv.provider.push(comment(&msg));
                conv.warn(msg);
                None
            }
        };

        if let Some(d) = &metadata {
            self.mark(d);
            let url = d.arg(0).unwrap_or_default().to_string();
            if let Some((tid, v1)) = entra_tenant(&url) {
                tenant = set_tenant(self, &tid, d, v1);
                if let Some(i) = &issuer_d {
                    self.mark(i);
                    self.provider.push(comment(&format!("line {}: {}: implied by tenant_id", i.line, i.shown())));
                }
            } else {
                match (&issuer_d, url.strip_suffix("/.well-known/openid-configuration")) {
                    (Some(i), _) => {
                        self.mark(i);
                        let iss = i.arg(0).unwrap_or_default();
                        note_dollar(iss, i.line, &mut self.warnings);
                        self.provider.push(kv("issuer", iss));
                        self.provider.push(kv("discovery_url", &url));
                    }
                    (None, Some(base)) if !base.is_empty() => {
                        note_dollar(base, d.line, &mut self.warnings);
                        self.provider.push(kv("issuer", base));
                    }
                    _ => {
                        let r = self.env_ref("OIDC_ISSUER");
                        self.provider.push(kv("issuer", &r));
                        self.provider.push(kv("discovery_url", &url));
                        let msg = format!(
                            "line {}: the metadata URL does not end in /.well-known/openid-configuration: set \
                             OIDC_ISSUER to the `issuer` in that document",
                            d.line
                        );
                        self.provider.push(comment(&msg));
                        self.warn(msg);
                    }
                }
            }
        } else if let Some(i) = &issuer_d {
            self.mark(i);
            let iss = i.arg(0).unwrap_or_default();
            self.provider.push(kv("issuer", iss));
        } else if let Some((j, (tid, v1))) =
            jwks.as_ref().and_then(|j| entra_tenant(j.arg(0).unwrap_or_default()).map(|t| (j, t)))
        {
            tenant = set_tenant(self, &tid, j, v1);
        } else if let Some(i) = oauth_issuer.as_ref().filter(|i| i.arg(0).is_some()) {
            self.mark(i);
            self.provider.push(kv("issuer", i.arg(0).unwrap_or_default()));
        } else if let Some(om) = oauth_meta.as_ref().and_then(|o| {
            o.arg(0).and_then(|u| u.strip_suffix("/.well-known/oauth-authorization-server").map(|b| (o, b)))
        }) {
            let (o, base) = om;
            self.mark(o);
            self.provider.push(kv("issuer", base));
            self.provider.push(kv("discovery_url", &format!("{base}/.well-known/openid-configuration")));
            self.provider.push(comment(&format!(
                "line {}: {}: the sidecar reads OpenID discovery; check that this URL serves it",
                o.line,
                o.shown()
            )));
        } else {
            let r = self.env_ref("OIDC_ISSUER");
            self.provider.push(kv("issuer", &r));
            let msg = "no OIDCProviderMetadataURL or OIDCProviderIssuer found: set OIDC_ISSUER to your provider's \
                       issuer (Entra ID: use tenant_id = \"<tenant GUID>\" instead)"
                .to_string();
            self.provider.push(comment(&msg));
            self.warn(msg);
        }

        if let Some(j) = &jwks {
            self.mark(j);
            let jurl = j.arg(0).unwrap_or_default();
            let under_issuer = self
                .provider
                .iter()
                .find_map(|l| l.strip_prefix("issuer = \"").and_then(|r| r.strip_suffix('"')).map(String::from))
                .is_some_and(|iss| !iss.starts_with("${") && jurl.starts_with(&format!("{}/", iss.trim_end_matches('/'))));
            let same = under_issuer || tenant.is_some() && entra_tenant(jurl).map(|t| t.0) == tenant;
            if same || metadata.is_none() && issuer_d.is_none() {
                self.provider.push(comment(&format!(
                    "line {}: {}: Bearer tokens are verified with the keys from the provider's discovery document",
                    j.line,
                    j.shown()
                )));
            } else {
                let msg = format!(
                    "line {}: {}: the sidecar verifies Bearer tokens only with the provider's own jwks_uri (from \
                     discovery); tokens signed by another key set will be refused",
                    j.line,
                    j.shown()
                );
                self.provider.push(comment(&msg));
                self.warn(msg);
            }
        }
        if let Some(i) = &oauth_issuer {
            if !self.used.contains(&i.line) {
                self.mark(i);
                self.provider.push(comment(&format!(
                    "line {}: {}: the provider's issuer is always checked; add it to extra_issuers if it differs",
                    i.line,
                    i.shown()
                )));
            }
        }

        // Client.
        let client = self.find_global(m, "OIDCClientID").cloned();
        let oauth_client = self.find_global(m, "OIDCOAuthClientID").cloned();
        let client_id = match (&client, &oauth_client) {
            (Some(c), _) => {
                self.mark(c);
                c.arg(0).unwrap_or_default().to_string()
            }
            (None, Some(o)) => {
                self.mark(o);
                o.arg(0).unwrap_or_default().to_string()
            }
            (None, None) => {
                let r = self.env_ref("OIDC_CLIENT_ID");
                let msg = "no OIDCClientID found: set OIDC_CLIENT_ID (the sidecar's own app registration)".to_string();
                self.provider.push(comment(&msg));
                self.warn(msg);
                r
            }
        };
        self.provider.push(kv("client_id", &client_id));
        if let (Some(_), Some(o)) = (&client, &oauth_client) {
            self.mark(o);
            self.provider.push(comment(&format!(
                "line {}: {}: introspection client; the sidecar verifies JWT access tokens locally",
                o.line,
                o.shown()
            )));
        }
        self.client_id = client_id.clone();

        let auth = self.find_global(m, "OIDCProviderTokenEndpointAuth").cloned();
        let auth_method = auth.as_ref().and_then(|a| a.arg(0)).unwrap_or("client_secret_basic").to_string();
        if let Some(a) = &auth {
            self.mark(a);
        }
        let secret = self.find_global(m, "OIDCClientSecret").cloned();
        match auth_method.split(':').next().unwrap_or_default() {
            "private_key_jwt" => {
                self.provider.push(kv("client_auth", "private_key_jwt"));
                let keyfile = self.find_global(m, "OIDCPrivateKeyFiles").cloned();
                let path = keyfile
                    .as_ref()
                    .and_then(|k| k.arg(0))
                    .map(|p| p.rsplit('#').next().unwrap_or(p).to_string())
                    .unwrap_or_else(|| "/run/secrets/sidecar.key".to_string());
                if let Some(k) = &keyfile {
                    self.mark(k);
                }
                self.provider.push(kv("private_key_file", &path));
                self.provider.push(comment(
                    "set certificate_thumbprint to the base64url SHA-1 of the certificate uploaded to the app \
                     registration (Entra needs x5t); mount the key from Secrets Manager, not the image",
                ));
                if let Some(s) = &secret {
                    self.mark(s);
                    self.provider.push(comment(&format!("line {}: {}: unused with private_key_jwt", s.line, s.shown())));
                }
            }
            method @ ("client_secret_basic" | "client_secret_post") => {
                if method == "client_secret_post" {
                    self.provider.push(kv("client_auth", "client_secret_post"));
                }
                let r = self.env_ref("OIDC_CLIENT_SECRET");
                self.provider.push(kv("client_secret", &r));
                match &secret {
                    Some(s) => {
                        self.mark(s);
                        let msg = format!(
                            "line {}: OIDCClientSecret was not copied: put the secret in Secrets Manager and pass it \
                             as OIDC_CLIENT_SECRET (ECS task `secrets`), or use client_secret_file",
                            s.line
                        );
                        self.provider.push(comment(&msg));
                        self.warn(msg);
                    }
                    None => {
                        let msg = "no OIDCClientSecret in the Apache config: set OIDC_CLIENT_SECRET (or use \
                                   client_auth = \"private_key_jwt\")"
                            .to_string();
                        self.provider.push(comment(&msg));
                        self.warn(msg);
                    }
                }
            }
            other => {
                let r = self.env_ref("OIDC_CLIENT_SECRET");
                self.provider.push(kv("client_secret", &r));
                let msg = format!(
                    "token endpoint auth `{other}` is not supported: use client_secret_basic, client_secret_post or \
                     private_key_jwt"
                );
                self.provider.push(comment(&msg));
                self.warn(msg);
                if let Some(s) = &secret {
                    self.mark(s);
                }
            }
        }

        // Audiences for Bearer tokens.
        let aud = self.find_global(m, "OIDCOAuthVerifyAudience").cloned();
        match &aud {
            Some(a) if !a.args.is_empty() => {
                self.mark(a);
                self.provider.push(format!("audiences = {}", toml_arr(&a.args)));
            }
            _ => {
                self.provider.push(format!("audiences = {}", toml_arr(std::slice::from_ref(&client_id))));
                let bearer_used = all_scopes(m).any(|s| {
                    s.paths.iter().any(|p| {
                        p.directives.iter().any(|d| {
                            d.is("AuthType")
                                && d.arg(0).is_some_and(|a| {
                                    a.eq_ignore_ascii_case("oauth20") || a.eq_ignore_ascii_case("auth-openidc")
                                })
                        })
                    })
                });
                if bearer_used {
                    let msg = "mod_auth_openidc did not check `aud` of Bearer tokens (no OIDCOAuthVerifyAudience); \
                               the sidecar always does: audiences lists the client id, add your API's App ID URI \
                               (api://...) if clients ask for that"
                        .to_string();
                    self.provider.push(comment(&msg));
                    self.warn(msg);
                } else {
                    self.provider.push(comment(
                        "Bearer tokens must carry one of these `aud` values (add the API's App ID URI if it has one)",
                    ));
                }
            }
        }

        if let Some(s) = self.find_global(m, "OIDCScope").cloned() {
            self.mark(&s);
            let mut scopes: Vec<String> = s.args.iter().flat_map(|a| a.split_whitespace()).map(String::from).collect();
            if !scopes.iter().any(|x| x == "openid") {
                scopes.insert(0, "openid".to_string());
                self.provider.push(comment(&format!("line {}: `openid` added to OIDCScope", s.line)));
            }
            self.provider.push(format!("scopes = {}", toml_arr(&scopes)));
        } else {
            self.provider.push(comment(
                "no OIDCScope: mod_auth_openidc asked for `openid` only; the sidecar's default is \
                 openid profile email offline_access",
            ));
        }

        if let Some(v) = self.find_global(m, "OIDCValidateIssuer").cloned() {
            self.mark(&v);
            if v.arg(0).is_some_and(|a| a.eq_ignore_ascii_case("off")) {
                let msg = format!(
                    "line {}: OIDCValidateIssuer Off: the sidecar always validates the issuer (and the Entra tenant)",
                    v.line
                );
                self.provider.push(comment(&msg));
                self.warn(msg);
            }
        }
        if let Some(i) = self.find_global(m, "OIDCIDTokenIatSlack").cloned() {
            self.mark(&i);
            self.provider.push(comment(&format!(
                "line {}: {}: clock_skew (default 60s) bounds exp, nbf and iat",
                i.line,
                i.shown()
            )));
        }
        if let Some(i) = self.find_global(m, "OIDCOAuthIntrospectionEndpoint").cloned() {
            self.mark(&i);
            let msg = format!(
                "line {}: {}: token introspection is not supported; the sidecar verifies JWT access tokens locally \
                 (opaque tokens will be refused)",
                i.line,
                i.shown()
            );
            self.provider.push(comment(&msg));
            self.warn(msg);
        }
    }

    fn map_session(&mut self, m: &Model) {
        let cache = self.find_global(m, "OIDCCacheType").cloned();
        let stype = self.find_global(m, "OIDCSessionType").cloned();
        let client_cookie =
            stype.as_ref().and_then(|s| s.arg(0)).is_some_and(|a| a.to_ascii_lowercase().starts_with("client-cookie"));
        if let Some(s) = &stype {
            self.mark(s);
            if s.arg(0).is_some_and(|a| a.contains(":persistent")) {
                self.session.push(comment(&format!(
                    "line {}: {}: the session cookie is a browser-session cookie; inactivity_timeout and \
                     max_lifetime bound it",
                    s.line,
                    s.shown()
                )));
            }
        }
        let cache_kind = cache.as_ref().and_then(|c| c.arg(0)).map(str::to_ascii_lowercase);
        if let Some(c) = &cache {
            self.mark(c);
        }
        if cache_kind.as_deref() == Some("redis") && !client_cookie {
            self.session.push(kv("store", "redis"));
            let server = self.find_global(m, "OIDCRedisCacheServer").cloned();
            let password = self.find_global(m, "OIDCRedisCachePassword").cloned();
            let username = self.find_global(m, "OIDCRedisCacheUsername").cloned();
            let db = self.find_global(m, "OIDCRedisCacheDatabase").cloned();
            let hostport = match &server {
                Some(s) => {
                    self.mark(s);
                    let hp = s.arg(0).unwrap_or("127.0.0.1").to_string();
                    if hp.contains(':') { hp } else { format!("{hp}:6379") }
                }
                None => "127.0.0.1:6379".to_string(),
            };
            let mut userinfo = String::new();
            if let Some(u) = &username {
                self.mark(u);
                userinfo.push_str(u.arg(0).unwrap_or_default());
            }
            if let Some(p) = &password {
                self.mark(p);
                let r = self.env_ref("REDIS_PASSWORD");
                userinfo.push(':');
                userinfo.push_str(&r);
                let msg = format!(
                    "line {}: OIDCRedisCachePassword was not copied: pass it as REDIS_PASSWORD from Secrets Manager",
                    p.line
                );
                self.session.push(comment(&msg));
                self.warn(msg);
            }
            let mut url = String::from("redis://");
            if !userinfo.is_empty() {
                url.push_str(&userinfo);
                url.push('@');
            }
            url.push_str(&hostport);
            if let Some(d) = &db {
                self.mark(d);
                if let Some(n) = d.arg(0).filter(|a| a.parse::<u32>().is_ok()) {
                    url.push('/');
                    url.push_str(n);
                }
            }
            self.session.push(kv("redis_url", &url));
            self.session.push(comment(
                "ElastiCache with in-transit encryption and AUTH: use rediss:// (see docs/aws.md); the URL can also \
                 come whole from Secrets Manager via redis_url_file or ${REDIS_URL}",
            ));
        } else {
            self.session.push(kv("store", "cookie"));
            if let Some(k) = &cache_kind {
                if k != "redis" || client_cookie {
                    self.session.push(comment(&format!(
                        "OIDCCacheType {k}{}: sessions are sealed into the cookie with session.keys, so every task \
                         opens them and no shared cache is needed (store = \"redis\" for large sessions)",
                        if client_cookie { " with client-cookie sessions" } else { "" }
                    )));
                }
            }
            for name in ["OIDCRedisCacheServer", "OIDCRedisCachePassword", "OIDCRedisCacheUsername", "OIDCRedisCacheDatabase", "OIDCMemCacheServers"] {
                if let Some(d) = self.find_global(m, name).cloned() {
                    self.mark(&d);
                    self.session.push(comment(&format!("line {}: {}: unused with the cookie store", d.line, d.shown())));
                }
            }
        }

        let r = self.env_ref("SESSION_KEY");
        self.session.push(format!("keys = {}", toml_arr(&[r])));
        match self.find_global(m, "OIDCCryptoPassphrase").cloned() {
            Some(p) => {
                self.mark(&p);
                let msg = format!(
                    "line {}: OIDCCryptoPassphrase was not copied and cannot be reused: generate a 32-byte key \
                     (`openssl rand -base64 32`), store it in Secrets Manager and pass it as SESSION_KEY; users sign \
                     in again once after the switch",
                    p.line
                );
                self.session.push(comment(&msg));
                self.warn(msg);
            }
            None => self.session.push(comment(
                "SESSION_KEY: a base64 32-byte key (`openssl rand -base64 32`) from Secrets Manager, the same in \
                 every task",
            )),
        }

        if let Some(d) = self.find_global(m, "OIDCSessionInactivityTimeout").cloned() {
            self.mark(&d);
            match d.arg(0).and_then(|a| a.parse::<u64>().ok()).filter(|n| *n > 0) {
                Some(n) => self.session.push(kv("inactivity_timeout", &humantime_secs(n))),
                None => self.session.push(comment(&format!("line {}: {}: not a positive number", d.line, d.shown()))),
            }
        } else {
            self.session.push(comment(
                "no OIDCSessionInactivityTimeout: mod_auth_openidc's default was 300s; the sidecar's is 1h",
            ));
        }
        if let Some(d) = self.find_global(m, "OIDCSessionMaxDuration").cloned() {
            self.mark(&d);
            match d.arg(0).and_then(|a| a.parse::<u64>().ok()) {
                Some(0) => {
                    let msg = format!(
                        "line {}: OIDCSessionMaxDuration 0 (ID token lifetime) has no equivalent: max_lifetime keeps \
                         its default (8h)",
                        d.line
                    );
                    self.session.push(comment(&msg));
                    self.warn(msg);
                }
                Some(n) => self.session.push(kv("max_lifetime", &humantime_secs(n))),
                None => self.session.push(comment(&format!("line {}: {}: not a number", d.line, d.shown()))),
            }
        }
        if let Some(d) = self.find_global(m, "OIDCRefreshAccessTokenBeforeExpiry").cloned() {
            self.mark(&d);
            match d.arg(0).and_then(|a| a.parse::<u64>().ok()) {
                Some(n) => self.session.push(kv("refresh_margin", &humantime_secs(n))),
                None => self.session.push(comment(&format!("line {}: {}: not a number", d.line, d.shown()))),
            }
        }
        if let Some(d) = self.find_global(m, "OIDCCookieDomain").cloned() {
            self.mark(&d);
            let dom = d.arg(0).unwrap_or_default().trim_start_matches('.');
            self.session.push(kv("cookie_name", "__Secure-oidc_session"));
            self.session.push(kv("cookie_domain", dom));
            self.session.push(comment(&format!(
                "line {}: a shared cookie domain rules out the __Host- cookie prefix, hence __Secure-",
                d.line
            )));
        }
        if let Some(d) = self.find_global(m, "OIDCCookie").cloned() {
            self.mark(&d);
            self.session.push(comment(&format!(
                "line {}: {}: the sidecar uses its own cookie (session.cookie_name); old cookies are ignored",
                d.line,
                d.shown()
            )));
        }

        if let Some(d) = self.find_global(m, "OIDCRedirectURI").cloned() {
            self.mark(&d);
            let uri = d.arg(0).unwrap_or_default();
            let (authority, path) = split_url(uri);
            if let Some((scheme, auth)) = authority {
                self.redirect_authority = Some((scheme, auth));
            }
            let path = if path.is_empty() { "/".to_string() } else { path };
            if path != "/oauth2/callback" {
                self.session_paths.push(kv("callback", &path));
            }
            self.session_paths.push(comment(&format!(
                "line {}: OIDCRedirectURI: the callback stays at {path}, so the redirect URI registered at the \
                 provider keeps working; logout is at session.paths.logout (/oauth2/logout), not \
                 {path}?logout=...",
                d.line
            )));
        }
        if let Some(d) = self.find_global(m, "OIDCDefaultLoggedOutURL").cloned() {
            self.mark(&d);
            self.session_paths.push(comment(&format!(
                "line {}: {}: pass the return URL to the logout endpoint instead (allow-listed, same host)",
                d.line,
                d.shown()
            )));
        }
    }

    fn map_hosts(&mut self, m: &Model) {
        let mut seen: HashSet<String> = HashSet::new();
        let scopes: Vec<&Scope> = if m.vhosts.is_empty() { vec![&m.main] } else { m.vhosts.iter().collect() };
        for scope in scopes {
            let chain: Vec<&Scope> = if scope.is_vhost { vec![scope, &m.main] } else { vec![scope] };
            let server_name = self.find(&[scope], "ServerName").cloned();
            let name = server_name
                .as_ref()
                .and_then(|d| d.arg(0))
                .map(host_only)
                .or_else(|| {
                    // No virtual hosts and no ServerName: the absolute redirect URI names the site.
                    (!scope.is_vhost).then(|| self.redirect_authority.as_ref().map(|(_, a)| host_only(a))).flatten()
                })
                .unwrap_or_else(|| "*".to_string());
            let has_content = !scope.paths.is_empty()
                || scope.directives.iter().any(|d| {
                    d.is("ProxyPass") || d.is("DocumentRoot") || d.name.to_ascii_lowercase().starts_with("oidc")
                });
            if scope.is_vhost && !has_content {
                let redirect = scope.directives.iter().any(|d| {
                    d.is("Redirect") || d.is("RedirectMatch") || d.is("RedirectPermanent") || d.is("RewriteRule")
                });
                for d in &scope.directives {
                    self.used.insert(d.line);
                }
                let why = if redirect {
                    "an HTTP-to-HTTPS redirect: the ALB's port-80 listener does that (docs/aws.md)"
                } else {
                    "nothing to protect or proxy"
                };
                self.top.push(comment(&format!(
                    "line {}: <VirtualHost {}> ({name}) skipped: {why}",
                    scope.line,
                    scope.vhost_args.join(" ")
                )));
                continue;
            }
            if !seen.insert(name.clone()) {
                let msg = format!(
                    "line {}: <VirtualHost {}> repeats host {name}; only the first one is converted",
                    scope.line,
                    scope.vhost_args.join(" ")
                );
                for d in &scope.directives {
                    self.used.insert(d.line);
                }
                for p in &scope.paths {
                    for d in &p.directives {
                        self.used.insert(d.line);
                    }
                }
                self.top.push(comment(&msg));
                self.warn(msg);
                continue;
            }
            if let Some(d) = &server_name {
                self.mark(d);
            }
            let host = self.map_host(scope, &chain, &name);
            self.hosts.push(host);
            // ServerAlias: one more host block per alias, with the same settings.
            if let Some(alias) = self.find(&[scope], "ServerAlias").cloned() {
                self.mark(&alias);
                for a in &alias.args {
                    let an = host_only(a);
                    if a.contains('*') || !seen.insert(an.clone()) {
                        let msg = format!("line {}: ServerAlias {a}: wildcard or repeated alias not converted", alias.line);
                        self.top.push(comment(&msg));
                        self.warn(msg);
                        continue;
                    }
                    let h = self.map_host(scope, &chain, &an);
                    self.hosts.push(h);
                }
            }
        }
    }

    fn map_host(&mut self, scope: &Scope, chain: &[&Scope], name: &str) -> HostOut {
        let mut h = HostOut { name: name.to_string(), ..HostOut::default() };
        h.head.push(kv("name", name));
        if scope.is_vhost {
            h.head.push(comment(&format!("from <VirtualHost {}> at line {}", scope.vhost_args.join(" "), scope.line)));
        }

        // Backend.
        self.map_backend(chain, &mut h);

        // Routes.
        let mut routes: Vec<RouteOut> = Vec::new();
        let doc_root = self.find(chain, "DocumentRoot").and_then(|d| d.arg(0)).map(String::from);
        for s in chain {
            for pb in &s.paths {
                if let Some(r) = self.map_path(pb, doc_root.as_deref(), &mut h) {
                    if let Some(pos) = routes.iter().position(|x| x.key == r.key) {
                        let old = routes.remove(pos);
                        h.head.push(comment(&format!(
                            "the rules for {} at an earlier line are overridden by a later section, as in Apache",
                            old.key
                        )));
                    }
                    routes.push(r);
                }
            }
        }
        if !routes.iter().any(|r| r.key == "prefix:/") {
            // The added catch-all follows the host's converted routes when deciding the login mode.
            let converted: Vec<&RouteOut> = routes.iter().filter(|r| r.protected).collect();
            let mut r = RouteOut {
                order: (1, std::cmp::Reverse(1)),
                key: "prefix:/".to_string(),
                protected: true,
                bearer_only: !converted.is_empty() && converted.iter().all(|r| r.bearer_only),
                deny_401: !converted.is_empty() && converted.iter().all(|r| r.deny_401),
                ..RouteOut::default()
            };
            r.lines.push(kv("path", "/"));
            r.lines.push(kv("access", "authenticated"));
            r.lines.push(comment(
                "catch-all added: in Apache, paths outside every protected <Location> were public; the sidecar \
                 requires a sign-in there (fail closed). Use access = \"public\" if that is what you want",
            ));
            routes.push(r);
        }
        routes.sort_by_key(|r| r.order);

        // Login mode.
        let unauth = self.find(chain, "OIDCUnAuthAction").cloned();
        let protected: Vec<&RouteOut> = routes.iter().filter(|r| r.protected).collect();
        let all_bearer = !protected.is_empty() && protected.iter().all(|r| r.bearer_only);
        let all_401 = !protected.is_empty() && protected.iter().all(|r| r.deny_401);
        let mut login = "redirect";
        if let Some(u) = &unauth {
            self.mark(u);
            let action = u.arg(0).unwrap_or("auth").to_ascii_lowercase();
            match (action.as_str(), u.args.len() > 1) {
                ("401" | "407" | "410", false) => login = "deny",
                ("401" | "407" | "410", true) => h.head.push(comment(&format!(
                    "line {}: {}: the expression is not translated; the sidecar answers 401 to requests that cannot \
                     follow a redirect (XHR, fetch, Sec-Fetch-Mode != navigate, no text/html in Accept) and \
                     redirects browsers, like mod_auth_openidc's default",
                    u.line,
                    u.shown()
                ))),
                ("auth", _) => {}
                ("pass", _) => h.head.push(comment(&format!(
                    "line {}: OIDCUnAuthAction pass at host level: mark the routes that allow anonymous callers with \
                     access = \"public\"",
                    u.line
                ))),
                _ => h.head.push(comment(&format!("line {}: {}: unknown action", u.line, u.shown()))),
            }
            if action != "401" && action != "auth" && action != "pass" {
                h.head.push(comment(&format!("line {}: HTTP {action} becomes 401", u.line)));
            }
        }
        if all_bearer || all_401 {
            login = "deny";
        }
        if login == "deny" {
            h.head.push(kv("login", "deny"));
            h.head.push(comment(if all_bearer {
                "every protected path was AuthType oauth20 (Bearer only): no browser sign-in on this host"
            } else {
                "unauthenticated requests get 401 (OIDCUnAuthAction 401), never a redirect"
            }));
        } else {
            h.head.push(kv("login", "redirect"));
            if protected.iter().any(|r| r.deny_401) {
                let msg = format!(
                    "host {name}: some paths had OIDCUnAuthAction 401 and others redirect to sign in; login is per \
                     host: XHR/fetch callers get 401 anyway, browsers navigating there are redirected"
                );
                h.head.push(comment(&msg));
                self.warn(msg);
            }
            if protected.iter().any(|r| r.bearer_only) {
                h.head.push(comment(
                    "paths that were AuthType oauth20 still accept Bearer tokens; a browser navigating there without \
                     a session is redirected to sign in instead of getting 401",
                ));
            }
        }

        // External URL: the redirect URI must stay absolute https behind the ALB.
        if name != "*" {
            match &self.redirect_authority {
                Some((scheme, auth)) if host_only(auth) == name => {
                    h.head.push(kv("external_url", &format!("{scheme}://{auth}")));
                }
                Some((_, auth)) => {
                    h.head.push(kv("external_url", &format!("https://{name}")));
                    h.head.push(comment(&format!(
                        "OIDCRedirectURI pointed at {auth}; this host signs users in on its own callback: register \
                         https://{name}<callback path> at the provider too"
                    )));
                }
                None => h.head.push(kv("external_url", &format!("https://{name}"))),
            }
        }

        // Identity headers.
        self.map_claim_headers(chain, &mut h);
        self.map_security_headers(chain, &mut h);

        // Directives and sections inside path blocks that nothing mapped.
        for s in chain {
            for pb in &s.paths {
                let ctx = format!("<{} {}>", pb.kind, pb.args.join(" "));
                for d in &pb.directives {
                    if !self.used.contains(&d.line) {
                        self.used.insert(d.line);
                        h.head.push(comment(&format!("line {}: {} in {ctx}: {}", d.line, d.shown(), unmapped_reason(d))));
                    }
                }
                for (line, kind) in &pb.unknown_sections {
                    let msg = format!("line {line}: <{kind}> in {ctx} was not converted (its rules are ignored)");
                    h.head.push(comment(&msg));
                    self.warn(msg);
                }
            }
        }
        h.routes = routes;
        h
    }

    fn map_backend(&mut self, chain: &[&Scope], h: &mut HostOut) {
        // (line, prefix, target, directive) for ProxyPass at scope level and inside <Location>.
        let mut passes: Vec<(Directive, String, String)> = Vec::new();
        for s in chain {
            for d in s.directives.iter().filter(|d| d.is("ProxyPass")) {
                if let (Some(p), Some(t)) = (d.arg(0), d.arg(1)) {
                    passes.push((d.clone(), p.to_string(), t.to_string()));
                }
            }
            for pb in &s.paths {
                if !pb.kind.eq_ignore_ascii_case("location") {
                    continue;
                }
                for d in pb.directives.iter().filter(|d| d.is("ProxyPass")) {
                    if let (Some(p), Some(t)) = (pb.args.first(), d.arg(0)) {
                        passes.push((d.clone(), p.clone(), t.to_string()));
                    }
                }
            }
        }
        let mut chosen: Option<(String, String)> = None; // (upstream url, target host)
        // The ProxyPass for "/" wins; else the first.
        passes.sort_by_key(|(_, p, _)| if p == "/" { 0 } else { 1 });
        for (d, prefix, target) in &passes {
            self.mark(d);
            if target == "!" {
                h.head.push(comment(&format!(
                    "line {}: ProxyPass {prefix} !: not needed: the sidecar answers its own endpoints before proxying",
                    d.line
                )));
                continue;
            }
            let Some(up) = parse_upstream(target) else {
                let msg = format!("line {}: ProxyPass {prefix} {target}: not an http(s) URL the sidecar can proxy to", d.line);
                h.head.push(comment(&msg));
                self.warn(msg);
                continue;
            };
            match &chosen {
                None => {
                    if !up.loopback_or_ip {
                        let msg = format!(
                            "line {}: ProxyPass {prefix} {target}: the sidecar proxies only to the app in its own task \
                             (an IP literal or localhost): upstream set to {}; point it at the app container's port",
                            d.line, up.url
                        );
                        h.head.push(comment(&msg));
                        self.warn(msg);
                    }
                    if up.was_tls {
                        let msg = format!(
                            "line {}: ProxyPass {prefix} {target}: the sidecar speaks plain HTTP to the app in its own \
                             task: upstream set to {}; make the app listen on plain HTTP on loopback",
                            d.line, up.url
                        );
                        h.head.push(comment(&msg));
                        self.warn(msg);
                    }
                    let tpath = up.path.trim_end_matches('/');
                    let ppath = prefix.trim_end_matches('/');
                    if tpath != ppath {
                        let msg = format!(
                            "line {}: ProxyPass {prefix} -> {target} rewrote the path; the sidecar forwards the path \
                             unchanged: serve the app at {prefix} or adjust it",
                            d.line
                        );
                        h.head.push(comment(&msg));
                        self.warn(msg);
                    }
                    h.head.push(kv("upstream", &up.url));
                    chosen = Some((up.url.clone(), target.clone()));
                }
                Some((url, _)) if *url == up.url => {}
                Some((url, _)) => {
                    let msg = format!(
                        "line {}: ProxyPass {prefix} {target}: one upstream per host ({url}); this one is not \
                         converted",
                        d.line
                    );
                    h.head.push(comment(&msg));
                    self.warn(msg);
                }
            }
        }
        if chosen.is_some() {
            return;
        }
        if let Some(dr) = self.find(chain, "DocumentRoot").cloned() {
            self.mark(&dr);
            h.head.push(kv("static_root", "/srv/spa"));
            h.head.push(comment(&format!(
                "line {}: DocumentRoot {}: bake those files into the image at /srv/spa (docker build --build-arg \
                 SPA_DIST=...)",
                dr.line,
                dr.arg(0).unwrap_or_default()
            )));
            return;
        }
        h.head.push(kv("upstream", "http://127.0.0.1:8080"));
        let msg = format!("host {}: no ProxyPass or DocumentRoot: upstream set to http://127.0.0.1:8080, adjust it", h.name);
        h.head.push(comment(&msg));
        self.warn(msg);
    }

    fn map_path(&mut self, pb: &PathBlock, doc_root: Option<&str>, h: &mut HostOut) -> Option<RouteOut> {
        let auth_type = pb.directives.iter().rev().find(|d| d.is("AuthType")).cloned();
        let unauth = pb.directives.iter().rev().find(|d| d.is("OIDCUnAuthAction")).cloned();
        if auth_type.is_none() && pb.require.is_empty() && unauth.is_none() {
            return None;
        }
        for d in pb.directives.iter().filter(|d| d.is("AuthType") || d.is("OIDCUnAuthAction")) {
            self.used.insert(d.line);
        }
        let ctx = format!("<{} {}>", pb.kind, pb.args.join(" "));
        let mut notes: Vec<String> = Vec::new();

        // Which paths.
        let kind = pb.kind.to_ascii_lowercase();
        let arg = pb.args.first().cloned().unwrap_or_default();
        let matcher: Option<(bool, String)> = match kind.as_str() {
            "location" if pb.args.len() >= 2 && arg == "~" => regex_to_path(&pb.args[1]),
            "location" if !arg.contains(['*', '?', '[']) => Some((false, arg.clone())),
            "locationmatch" => regex_to_path(&arg),
            "directory" if doc_root.is_some_and(|r| r.trim_end_matches('/') == arg.trim_end_matches('/')) => {
                notes.push(format!("{ctx} is the DocumentRoot: treated as /"));
                Some((false, "/".to_string()))
            }
            "proxy" | "proxymatch" => {
                notes.push(format!("{ctx} covers the proxied requests: treated as /"));
                Some((false, "/".to_string()))
            }
            _ => None,
        };
        let Some((exact, path)) = matcher else {
            let msg = format!(
                "line {}: {ctx}: cannot be turned into a path prefix; its rules are NOT converted: add a route for \
                 the same paths by hand (routes are prefixes on segment boundaries, or exact paths)",
                pb.line
            );
            h.head.push(comment(&msg));
            self.warn(msg);
            for r in &pb.require {
                if let ReqNode::Require(d) = r {
                    self.used.insert(d.line);
                }
            }
            return None;
        };
        if !path.starts_with('/') {
            let msg = format!("line {}: {ctx}: not an absolute path; not converted", pb.line);
            h.head.push(comment(&msg));
            self.warn(msg);
            return None;
        }

        // Who may pass.
        let mut warnings = Vec::new();
        let mut access = if pb.require.is_empty() {
            Access::Authenticated
        } else {
            eval_nodes(&pb.require, false, pb.line, &mut warnings)
        };
        for w in warnings {
            self.warn(format!("{ctx}: {w}"));
            notes.push(w);
        }
        mark_require(&pb.require, &mut self.used);
        let at = auth_type.as_ref().and_then(|d| d.arg(0)).map(str::to_ascii_lowercase);
        let mut bearer_only = false;
        match at.as_deref() {
            Some("openid-connect") | Some("auth-openidc") => {}
            Some("oauth20") => bearer_only = true,
            Some("none") => {
                access = Access::Public;
                notes.push("AuthType None: public".to_string());
            }
            Some(other) => {
                let msg = format!(
                    "line {}: AuthType {other} in {ctx} is replaced by OpenID Connect sign-in / Bearer tokens",
                    auth_type.as_ref().map(|d| d.line).unwrap_or(pb.line)
                );
                self.warn(msg.clone());
                notes.push(msg);
            }
            None if access != Access::Public => {
                notes.push("no AuthType here (inherited in Apache): sign-in required".to_string());
            }
            None => {}
        }
        if auth_type.is_some() && pb.require.is_empty() && access != Access::Public {
            notes.push("AuthType without Require: treated as Require valid-user".to_string());
        }
        let mut deny_401 = false;
        if let Some(u) = &unauth {
            match u.arg(0).map(str::to_ascii_lowercase).as_deref() {
                Some("pass") => {
                    access = Access::Public;
                    notes.push(format!(
                        "line {}: OIDCUnAuthAction pass: public; the upstream still gets the identity headers of a \
                         caller who happens to be signed in",
                        u.line
                    ));
                }
                Some("401" | "407" | "410") => deny_401 = true,
                _ => {}
            }
            if u.args.len() > 1 {
                notes.push(format!(
                    "line {}: the OIDCUnAuthAction expression is not translated (built-in XHR detection applies)",
                    u.line
                ));
            }
        }

        let mut r = RouteOut {
            order: (if exact { 0 } else { 1 }, std::cmp::Reverse(path.len())),
            key: format!("{}:{path}", if exact { "exact" } else { "prefix" }),
            protected: access != Access::Public,
            bearer_only,
            deny_401,
            ..RouteOut::default()
        };
        r.lines.push(kv(if exact { "exact" } else { "path" }, &path));
        match &access {
            Access::Public => r.lines.push(kv("access", "public")),
            Access::Authenticated => r.lines.push(kv("access", "authenticated")),
            Access::Require(q) => render_reqs(q, &mut r.lines),
        }
        r.lines.push(comment(&format!("from {ctx} at line {}", pb.line)));
        for n in notes {
            r.lines.push(comment(&n));
        }
        Some(r)
    }

    fn map_claim_headers(&mut self, chain: &[&Scope], h: &mut HostOut) {
        let pass = self.find(chain, "OIDCPassClaimsAs").cloned();
        // Per-location OIDCPassClaimsAs: the host takes the first one found.
        let loc_pass: Option<Directive> = chain
            .iter()
            .flat_map(|s| s.paths.iter())
            .flat_map(|p| p.directives.iter())
            .find(|d| d.is("OIDCPassClaimsAs"))
            .cloned();
        let effective = pass.clone().or(loc_pass.clone());
        for d in chain.iter().flat_map(|s| s.paths.iter()).flat_map(|p| p.directives.iter()).filter(|d| d.is("OIDCPassClaimsAs")) {
            self.used.insert(d.line);
            if effective.as_ref().is_some_and(|e| e.args != d.args) {
                let msg = format!("line {}: {}: claim headers are per host; the host-level setting is used", d.line, d.shown());
                h.head.push(comment(&msg));
                self.warn(msg);
            }
        }
        let mode = effective.as_ref().and_then(|d| d.arg(0)).unwrap_or("both").to_ascii_lowercase();
        if let Some(d) = &effective {
            self.mark(d);
        }
        let headers = mode == "headers" || mode == "both";
        if headers {
            h.head.push(kv("claim_headers", "mod_auth_openidc"));
            let at = self.find(chain, "OIDCPassAccessToken").cloned();
            let loc_at = chain
                .iter()
                .flat_map(|s| s.paths.iter())
                .flat_map(|p| p.directives.iter())
                .find(|d| d.is("OIDCPassAccessToken"))
                .cloned();
            let at = at.or(loc_at);
            let pass_at = at.as_ref().and_then(|d| d.arg(0)).is_none_or(|a| !a.eq_ignore_ascii_case("off"));
            if let Some(a) = &at {
                self.mark(a);
            }
            h.head.push(format!("claim_headers_access_token = {pass_at}"));
            h.head.push(comment(&format!(
                "OIDCPassClaimsAs {mode}{}: OIDC_CLAIM_<name> headers as mod_auth_openidc named them{}; prefer the \
                 signed X-Auth-Assertion in new code",
                if effective.is_none() { " (the default)" } else { "" },
                if pass_at { ", plus OIDC_access_token (turn off if the app does not read it)" } else { "" }
            )));
            if let Some(enc) = effective.as_ref().and_then(|d| d.arg(1)) {
                if !enc.eq_ignore_ascii_case("latin1") {
                    let msg = format!("OIDCPassClaimsAs encoding `{enc}` is not reproduced: values are sent as-is");
                    h.head.push(comment(&msg));
                    self.warn(msg);
                }
            }
        } else {
            h.head.push(kv("claim_headers", "none"));
            if mode == "environment" {
                h.head.push(comment(
                    "OIDCPassClaimsAs environment: variables never reached a proxied app except through RequestHeader \
                     lines; the upstream gets X-Auth-* headers and the signed X-Auth-Assertion",
                ));
            }
        }
        if let Some(p) = self.find(chain, "OIDCClaimPrefix").cloned() {
            self.mark(&p);
            if p.arg(0) != Some("OIDC_CLAIM_") {
                let msg = format!("line {}: {}: only the default prefix OIDC_CLAIM_ is produced", p.line, p.shown());
                h.head.push(comment(&msg));
                self.warn(msg);
            }
        }
        for name in ["OIDCRemoteUserClaim", "OIDCOAuthRemoteUserClaim", "OIDCAuthNHeader"] {
            if let Some(d) = self.find(chain, name).cloned() {
                self.mark(&d);
                let msg = format!(
                    "line {}: {}: REMOTE_USER has no header equivalent: the app should read the claim from the \
                     signed X-Auth-Assertion (or OIDC_CLAIM_<claim> with claim_headers = \"mod_auth_openidc\")",
                    d.line,
                    d.shown()
                );
                h.head.push(comment(&msg));
                self.warn(msg);
            }
        }
    }

    fn map_security_headers(&mut self, chain: &[&Scope], h: &mut HostOut) {
        for s in chain.iter().rev() {
            for d in s.directives.iter().filter(|d| d.is("Header")) {
                let mut args: &[String] = &d.args;
                if args.first().is_some_and(|a| a.eq_ignore_ascii_case("always") || a.eq_ignore_ascii_case("onsuccess")) {
                    args = &args[1..];
                }
                let (Some(action), Some(name)) = (args.first(), args.get(1)) else { continue };
                if !action.eq_ignore_ascii_case("set") {
                    continue;
                }
                let value = args.get(2).cloned().unwrap_or_default();
                let line = match name.to_ascii_lowercase().as_str() {
                    "strict-transport-security" => Some(kv("hsts", &value)),
                    "x-content-type-options" if value.eq_ignore_ascii_case("nosniff") => {
                        Some("content_type_options = true".to_string())
                    }
                    "referrer-policy" => Some(kv("referrer_policy", &value)),
                    "content-security-policy" => Some(kv("content_security_policy", &value)),
                    "x-frame-options" if !h.security.iter().any(|l| l.starts_with("content_security_policy")) => {
                        let fa = if value.eq_ignore_ascii_case("sameorigin") { "'self'" } else { "'none'" };
                        Some(format!(
                            "{}  # from X-Frame-Options {}",
                            kv("content_security_policy", &format!("frame-ancestors {fa}")),
                            comment_safe(&value)
                        ))
                    }
                    _ => None,
                };
                if let Some(l) = line {
                    self.used.insert(d.line);
                    let key = l.split(' ').next().unwrap_or_default().to_string();
                    h.security.retain(|x| !x.starts_with(&format!("{key} ")));
                    h.security.push(l);
                }
            }
        }
    }

    /// Every directive not mapped gets a comment where it was.
    fn sweep(&mut self, m: &Model) {
        let mut grouped: Vec<(usize, String)> = Vec::new();
        let mut scopes: Vec<(&Scope, Option<usize>)> = vec![(&m.main, None)];
        // Host index for each vhost (by its name) to put comments in its block.
        for v in &m.vhosts {
            let name = v
                .directives
                .iter()
                .rev()
                .find(|d| d.is("ServerName"))
                .and_then(|d| d.arg(0))
                .map(host_only)
                .unwrap_or_else(|| "*".to_string());
            scopes.push((v, self.hosts.iter().position(|h| h.name == name)));
        }
        for (scope, host) in scopes {
            for d in &scope.directives {
                if self.used.contains(&d.line) {
                    continue;
                }
                self.used.insert(d.line);
                let text = format!("line {}: {}: {}", d.line, d.shown(), unmapped_reason(d));
                if d.is("Include") || d.is("IncludeOptional") {
                    self.warn(format!(
                        "line {}: {} was not read: run `oidc-sidecar migrate apache` on that file too",
                        d.line,
                        d.shown()
                    ));
                }
                if d.name.to_ascii_lowercase().starts_with("oidc") && not_needed_reason(&d.name).is_none() {
                    self.warn(format!("line {}: {} has no equivalent in the sidecar", d.line, d.shown()));
                }
                match host.and_then(|i| self.hosts.get_mut(i)) {
                    Some(h) => h.head.push(comment(&text)),
                    None => grouped.push((d.line, comment(&text))),
                }
            }
            for (line, kind) in &scope.unknown_sections {
                let msg = format!("line {line}: <{kind}> was not converted");
                self.warn(msg.clone());
                grouped.push((*line, comment(&msg)));
            }
            // Path blocks that made no route and had no AuthType: their other directives.
            for pb in &scope.paths {
                for d in &pb.directives {
                    if self.used.contains(&d.line) {
                        continue;
                    }
                    self.used.insert(d.line);
                    grouped.push((
                        d.line,
                        comment(&format!(
                            "line {}: {} in <{} {}>: {}",
                            d.line,
                            d.shown(),
                            pb.kind,
                            pb.args.join(" "),
                            unmapped_reason(d)
                        )),
                    ));
                }
            }
        }
        grouped.sort_by_key(|(l, _)| *l);
        self.top.extend(grouped.into_iter().map(|(_, c)| c));
    }

    fn finish(self) -> MigrateOutput {
        let mut out = String::new();
        for l in &self.top {
            out.push_str(l);
            out.push('\n');
        }
        if !self.env.is_empty() {
            let names: Vec<&str> = self.env.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "# Environment this file needs (from Secrets Manager / SSM in ECS `secrets`): {}",
                names.join(", ")
            );
        }
        let section = |out: &mut String, title: &str, lines: &[String]| {
            out.push('\n');
            out.push_str(title);
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        };
        section(&mut out, "[server]", &self.server);
        section(&mut out, "[provider]", &self.provider);
        section(&mut out, "[session]", &self.session);
        if !self.session_paths.is_empty() {
            section(&mut out, "[session.paths]", &self.session_paths);
        }
        for h in &self.hosts {
            section(&mut out, "[[hosts]]", &h.head);
            if !h.security.is_empty() {
                section(&mut out, "[hosts.security_headers]", &h.security);
            }
            for r in &h.routes {
                section(&mut out, "[[hosts.routes]]", &r.lines);
            }
        }
        // Alias hosts repeat their vhost's notes: report each once.
        let mut seen = HashSet::new();
        let warnings = self.warnings.into_iter().filter(|w| seen.insert(w.clone())).collect();
        MigrateOutput { toml: out, warnings, env_vars: self.env.into_iter().collect() }
    }
}

fn all_scopes(m: &Model) -> impl Iterator<Item = &Scope> {
    std::iter::once(&m.main).chain(m.vhosts.iter())
}

fn mark_require(nodes: &[ReqNode], used: &mut HashSet<usize>) {
    for n in nodes {
        match n {
            ReqNode::Require(d) => {
                used.insert(d.line);
            }
            ReqNode::Group { children, .. } => mark_require(children, used),
        }
    }
}

fn render_reqs(q: &Reqs, lines: &mut Vec<String>) {
    if !q.roles_any.is_empty() {
        lines.push(format!("roles = {}", toml_arr(&q.roles_any)));
    }
    if !q.roles_all.is_empty() {
        lines.push(format!("roles_all = {}", toml_arr(&q.roles_all)));
    }
    if !q.groups_any.is_empty() {
        lines.push(format!("groups = {}", toml_arr(&q.groups_any)));
    }
    if !q.scopes_all.is_empty() {
        lines.push(format!("scopes = {}", toml_arr(&q.scopes_all)));
    }
    if !q.scopes_any.is_empty() {
        if q.scopes_any.len() == 1 && q.scopes_all.is_empty() {
            lines.push(format!("scopes = {}", toml_arr(&q.scopes_any)));
        } else {
            lines.push(format!("scopes_any = {}", toml_arr(&q.scopes_any)));
        }
    }
    let mut rules: Vec<String> = q
        .claims
        .iter()
        .map(|(c, test, v)| format!("{{ claim = {}, {test} = {} }}", toml_str(c), toml_str(v)))
        .collect();
    for u in &q.unmapped {
        rules.push(format!("{{ claim = {}, equals = {} }}", toml_str(UNMAPPED_CLAIM), toml_str(u)));
    }
    if !rules.is_empty() {
        lines.push(format!("claims = [{}]", rules.join(", ")));
    }
    if !q.scopes_any.is_empty() || !q.scopes_all.is_empty() {
        lines.push(comment(
            "mod_auth_openidc compared the whole scp string; the sidecar checks one space-separated scope",
        ));
    }
    if q.claims.iter().any(|(_, t, _)| *t == "equals") {
        lines.push(comment("`equals` compares a single value; use `contains` if the claim is an array"));
    }
    if !q.unmapped.is_empty() {
        lines.push(comment(&format!(
            "`{UNMAPPED_CLAIM}` stands for an Apache rule with no equivalent: nobody passes until you replace it"
        )));
    }
}

fn unmapped_reason(d: &Directive) -> String {
    if let Some(r) = not_needed_reason(&d.name) {
        return format!("not needed: {r}");
    }
    let l = d.name.to_ascii_lowercase();
    if l == "include" || l == "includeoptional" {
        return "not read: convert that file separately".to_string();
    }
    if l.starts_with("rewrite") || l.starts_with("redirect") {
        return "no equivalent: redirects and rewrites belong in the ALB listener rules or the app".to_string();
    }
    if l == "requestheader" {
        return "no equivalent: the sidecar removes inbound X-Auth-* (and OIDC_*) headers and sets its own".to_string();
    }
    if l == "header" {
        return "no equivalent: only HSTS, nosniff, Referrer-Policy and CSP/frame-ancestors are set by the sidecar"
            .to_string();
    }
    if l.starts_with("oidc") {
        return "no equivalent in the sidecar (ignored)".to_string();
    }
    "no equivalent in the sidecar (ignored)".to_string()
}

// === small parsers ===

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration` (or v1, or the keys URL) ->
/// (tenant, is_v1).
fn entra_tenant(url: &str) -> Option<(String, bool)> {
    let rest = ["https://login.microsoftonline.com/", "https://login.windows.net/", "https://sts.windows.net/"]
        .iter()
        .find_map(|p| url.strip_prefix(p))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let tid = segs.first().filter(|t| !t.is_empty())?.to_string();
    match &segs[1..] {
        ["v2.0", ".well-known", "openid-configuration"] | ["discovery", "v2.0", "keys"] | ["v2.0"] => Some((tid, false)),
        [".well-known", "openid-configuration"] | ["discovery", "keys"] | [] => Some((tid, true)),
        _ => None,
    }
}

/// `ServerName www.example.com:443` -> `www.example.com`.
fn host_only(s: &str) -> String {
    let s = s.split("://").last().unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let host = if s.starts_with('[') { s } else { s.rsplit_once(':').map(|(h, _)| h).unwrap_or(s) };
    host.to_ascii_lowercase()
}

/// `https://app.example.com/secure/cb` -> (Some(("https", "app.example.com")), "/secure/cb"); a relative path ->
/// (None, path).
fn split_url(uri: &str) -> (Option<(String, String)>, String) {
    if let Some((scheme, rest)) = uri.split_once("://") {
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split(['?', '#']).next().unwrap_or("/");
        (Some((scheme.to_ascii_lowercase(), auth.to_ascii_lowercase())), path.to_string())
    } else {
        (None, uri.split(['?', '#']).next().unwrap_or("/").to_string())
    }
}

struct Upstream {
    url: String,
    path: String,
    loopback_or_ip: bool,
    /// The httpd target was https/wss: the sidecar speaks plain HTTP to the app in its own task.
    was_tls: bool,
}

fn parse_upstream(target: &str) -> Option<Upstream> {
    let (scheme, rest) = target.split_once("://")?;
    let was_tls = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" | "h2c" => false,
        "https" | "wss" | "h2" => true,
        _ => return None,
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.is_empty() {
        return None;
    }
    let (host, port) = if let Some(stripped) = auth.strip_prefix('[') {
        let (h, p) = stripped.split_once(']')?;
        (format!("[{h}]"), p.strip_prefix(':').map(String::from))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (auth.to_string(), None),
        }
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let is_ip = bare.parse::<std::net::IpAddr>().is_ok();
    let loopback_or_ip = is_ip || bare.eq_ignore_ascii_case("localhost");
    let port = port.unwrap_or_else(|| if was_tls { "443".into() } else { "80".into() });
    let url = if loopback_or_ip {
        format!("http://{}:{port}", host.to_ascii_lowercase())
    } else {
        format!("http://127.0.0.1:{port}")
    };
    Some(Upstream { url, path: path.to_string(), loopback_or_ip, was_tls })
}

/// An anchored `<LocationMatch>` regex that is really a literal prefix (`^/api/`, `^/api/.*`) or an exact path
/// (`^/health$`) -> (exact, path). Anything else is left for the operator.
fn regex_to_path(re: &str) -> Option<(bool, String)> {
    let body = re.strip_prefix('^')?;
    let (body, exact) = match body.strip_suffix('$') {
        Some(b) if !b.ends_with('\\') => (b, true),
        _ => (body, false),
    };
    let body = if exact {
        body
    } else {
        body.strip_suffix("(.*)").or_else(|| body.strip_suffix(".*")).unwrap_or(body)
    };
    if exact && (body.ends_with(".*") || body.ends_with("(.*)")) {
        return regex_to_path(&format!("^{body}"));
    }
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('.' | '/' | '-' | '_' | '~')) => out.push(n),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || "/-_~%".contains(c) => out.push(c),
            _ => return None,
        }
    }
    if out.is_empty() || !out.starts_with('/') {
        return None;
    }
    Some((exact, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_toml(out: &MigrateOutput) -> toml::Value {
        match toml::from_str::<toml::Value>(&out.toml) {
            Ok(v) => v,
            Err(e) => panic!("output is not valid TOML: {e}\n{}", out.toml),
        }
    }

    fn routes(v: &toml::Value, host: usize) -> Vec<toml::Value> {
        v["hosts"][host]["routes"].as_array().cloned().unwrap_or_default()
    }

    fn route<'a>(rs: &'a [toml::Value], path: &str) -> &'a toml::Value {
        rs.iter()
            .find(|r| r.get("path").and_then(|p| p.as_str()) == Some(path) || r.get("exact").and_then(|p| p.as_str()) == Some(path))
            .unwrap_or_else(|| panic!("no route for {path}: {rs:?}"))
    }

    const README: &str = r#"LoadModule auth_openidc_module modules/mod_auth_openidc.so

# OIDCRedirectURI is a vanity URL that must point to a path protected by this module but must NOT point to any content
OIDCRedirectURI https://www.example.com/secure/redirect_uri

OIDCProviderMetadataURL https://accounts.google.com/.well-known/openid-configuration
OIDCClientID my-client-id
OIDCClientSecret s3cr3t-do-not-copy
OIDCCryptoPassphrase very-secret-passphrase

<Location /secure>
   AuthType openid-connect
   Require valid-user
</Location>
"#;

    #[test]
    fn readme_example_maps_and_never_copies_secrets() {
        let out = migrate_apache(README);
        let v = parse_toml(&out);
        assert_eq!(v["provider"]["issuer"].as_str(), Some("https://accounts.google.com"));
        assert_eq!(v["provider"]["client_id"].as_str(), Some("my-client-id"));
        assert_eq!(v["provider"]["client_secret"].as_str(), Some("${OIDC_CLIENT_SECRET}"));
        assert_eq!(v["session"]["keys"][0].as_str(), Some("${SESSION_KEY}"));
        assert_eq!(v["session"]["paths"]["callback"].as_str(), Some("/secure/redirect_uri"));
        assert!(!out.toml.contains("s3cr3t") && !out.toml.contains("very-secret"), "{}", out.toml);
        assert!(out.warnings.iter().all(|w| !w.contains("s3cr3t") && !w.contains("very-secret")));
        assert!(out.warnings.iter().any(|w| w.contains("32-byte key")));
        assert_eq!(out.env_vars, vec!["OIDC_CLIENT_SECRET".to_string(), "SESSION_KEY".to_string()]);
        let rs = routes(&v, 0);
        assert_eq!(route(&rs, "/secure")["access"].as_str(), Some("authenticated"));
        // The catch-all is added and fails closed.
        assert_eq!(route(&rs, "/")["access"].as_str(), Some("authenticated"));
        // No ServerName: the absolute redirect URI names the site.
        assert_eq!(v["hosts"][0]["name"].as_str(), Some("www.example.com"));
        assert_eq!(v["hosts"][0]["external_url"].as_str(), Some("https://www.example.com"));
        assert!(out.toml.contains("# migrate: line 1: LoadModule"), "{}", out.toml);
    }

    #[test]
    fn continuation_comments_and_quotes() {
        let lines = logical_lines("# a \\\nOIDCScope \"openid \\\n  email\"\n\n  Foo bar\n");
        assert_eq!(lines, vec![(2, "OIDCScope \"openid    email\"".to_string()), (5, "Foo bar".to_string())]);
        assert_eq!(split_args(r#"a "b c" 'd e' "f\"g""#), vec!["a", "b c", "d e", "f\"g"]);
        let out = migrate_apache("OIDCScope \"openid \\\n email profile\"\n");
        let v = parse_toml(&out);
        let scopes: Vec<&str> = v["provider"]["scopes"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["openid", "email", "profile"]);
    }

    #[test]
    fn openid_is_added_to_scopes() {
        let v = parse_toml(&migrate_apache("OIDCScope \"email profile\"\n"));
        assert_eq!(v["provider"]["scopes"][0].as_str(), Some("openid"));
    }

    #[test]
    fn entra_metadata_becomes_tenant_id() {
        let conf = "OIDCProviderMetadataURL https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/.well-known/openid-configuration\n";
        let v = parse_toml(&migrate_apache(conf));
        assert_eq!(v["provider"]["tenant_id"].as_str(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(v["provider"].get("issuer").is_none());
        // `common` is multi-tenant: not supported, env placeholder.
        let out = migrate_apache("OIDCProviderMetadataURL https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration\n");
        assert_eq!(parse_toml(&out)["provider"]["tenant_id"].as_str(), Some("${ENTRA_TENANT_ID}"));
        assert!(out.env_vars.contains(&"ENTRA_TENANT_ID".to_string()));
        assert_eq!(entra_tenant("https://login.microsoftonline.com/x/discovery/v2.0/keys"), Some(("x".into(), false)));
        assert_eq!(entra_tenant("https://login.microsoftonline.com/x/.well-known/openid-configuration"), Some(("x".into(), true)));
        assert_eq!(entra_tenant("https://accounts.google.com/.well-known/openid-configuration"), None);
    }

    #[test]
    fn durations_and_redis() {
        let conf = "OIDCSessionInactivityTimeout 300\nOIDCSessionMaxDuration 28800\nOIDCCacheType redis\n\
                    OIDCRedisCacheServer cache.internal:6380\nOIDCRedisCachePassword hunter2hunter2\nOIDCRedisCacheDatabase 2\n";
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        assert_eq!(v["session"]["inactivity_timeout"].as_str(), Some("5m"));
        assert_eq!(v["session"]["max_lifetime"].as_str(), Some("8h"));
        assert_eq!(v["session"]["store"].as_str(), Some("redis"));
        assert_eq!(v["session"]["redis_url"].as_str(), Some("redis://:${REDIS_PASSWORD}@cache.internal:6380/2"));
        assert!(!out.toml.contains("hunter2"));
        assert_eq!(humantime_secs(90), "90s");
        assert_eq!(humantime_secs(120), "2m");
        // Client-cookie sessions stay in the cookie even with a redis cache.
        let v = parse_toml(&migrate_apache("OIDCCacheType redis\nOIDCSessionType client-cookie\n"));
        assert_eq!(v["session"]["store"].as_str(), Some("cookie"));
    }

    #[test]
    fn require_claims_map_to_policy_fields() {
        let conf = r#"
<Location /admin>
  AuthType openid-connect
  Require claim roles:Admin
  Require claim roles:Owner
</Location>
<Location /sales>
  AuthType openid-connect
  <RequireAll>
    Require claim department:Sales
    Require claim amr:mfa
    Require claim scp:user.read
  </RequireAll>
</Location>
<Location /grp>
  AuthType auth-openidc
  Require claim groups:0b1c
</Location>
<Location /public>
  Require all granted
</Location>
"#;
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        let rs = routes(&v, 0);
        let admin = route(&rs, "/admin");
        assert_eq!(admin["roles"].as_array().unwrap().len(), 2);
        let sales = route(&rs, "/sales");
        let claims = sales["claims"].as_array().unwrap();
        assert_eq!(claims[0]["claim"].as_str(), Some("department"));
        assert_eq!(claims[0]["equals"].as_str(), Some("Sales"));
        assert_eq!(claims[1]["contains"].as_str(), Some("mfa"));
        assert_eq!(sales["scopes"][0].as_str(), Some("user.read"));
        assert_eq!(route(&rs, "/grp")["groups"][0].as_str(), Some("0b1c"));
        assert_eq!(route(&rs, "/public")["access"].as_str(), Some("public"));
        // Most specific first, catch-all last.
        let paths: Vec<&str> = rs.iter().filter_map(|r| r["path"].as_str()).collect();
        assert_eq!(paths.last(), Some(&"/"));
        assert!(paths.iter().position(|p| *p == "/public") < paths.iter().position(|p| *p == "/"));
    }

    #[test]
    fn untranslatable_rules_fail_closed() {
        let conf = r#"
<Location /regex>
  AuthType openid-connect
  Require claim "email~.*@example\.com$"
</Location>
<Location /ip>
  AuthType openid-connect
  Require ip 10.0.0.0/8
</Location>
<Location /mixed>
  AuthType openid-connect
  Require claim roles:Admin
  Require claim department:IT
</Location>
<Location /either>
  AuthType openid-connect
  Require claim roles:Admin
  Require ip 10.0.0.0/8
</Location>
"#;
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        let rs = routes(&v, 0);
        for (p, text) in [("/regex", "email~"), ("/ip", "ip 10.0.0.0/8")] {
            let r = route(&rs, p);
            assert!(r.get("access").is_none(), "{p} must not be merely authenticated");
            assert_eq!(r["claims"][0]["claim"].as_str(), Some(UNMAPPED_CLAIM), "{p}");
            // The placeholder names the original rule so the operator knows what to write.
            assert!(r["claims"][0]["equals"].as_str().is_some_and(|e| e.contains(text)), "{p}: {r:?}");
        }
        // Any-of across kinds becomes all-of (stricter).
        let mixed = route(&rs, "/mixed");
        assert_eq!(mixed["roles"][0].as_str(), Some("Admin"));
        assert_eq!(mixed["claims"][0]["claim"].as_str(), Some("department"));
        assert!(out.warnings.iter().any(|w| w.contains("ALL of them")));
        // An untranslatable alternative is dropped: the remaining one is still required.
        let either = route(&rs, "/either");
        assert_eq!(either["roles"][0].as_str(), Some("Admin"));
        assert!(either.get("claims").is_none());
    }

    #[test]
    fn location_match_literal_prefixes_only() {
        assert_eq!(regex_to_path("^/api/"), Some((false, "/api/".into())));
        assert_eq!(regex_to_path("^/api/.*"), Some((false, "/api/".into())));
        assert_eq!(regex_to_path("^/health$"), Some((true, "/health".into())));
        assert_eq!(regex_to_path("^/v1\\.0/"), Some((false, "/v1.0/".into())));
        assert_eq!(regex_to_path("/api/"), None);
        assert_eq!(regex_to_path("^/(?!public)"), None);
        assert_eq!(regex_to_path("^/api/v[0-9]+/"), None);
        let out = migrate_apache("<LocationMatch \"^/(?!public)\">\nAuthType openid-connect\nRequire valid-user\n</LocationMatch>\n");
        assert!(out.warnings.iter().any(|w| w.contains("NOT converted")));
    }

    #[test]
    fn oauth20_host_denies_and_checks_audience() {
        let conf = r#"
OIDCOAuthVerifyJwksUri https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys
<VirtualHost *:443>
  ServerName api.example.com
  ProxyPass / http://127.0.0.1:8000/
  <Location /api>
    AuthType oauth20
    Require claim scp:user.read
  </Location>
</VirtualHost>
"#;
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        assert_eq!(v["provider"]["tenant_id"].as_str(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert_eq!(v["hosts"][0]["login"].as_str(), Some("deny"));
        assert_eq!(v["hosts"][0]["upstream"].as_str(), Some("http://127.0.0.1:8000"));
        assert!(out.warnings.iter().any(|w| w.contains("did not check `aud`")));
    }

    #[test]
    fn upstream_must_be_local_and_paths_unchanged() {
        let conf = "ProxyPass /app/ http://backend.internal:8080/\nProxyPassReverse /app/ http://backend.internal:8080/\n";
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        assert_eq!(v["hosts"][0]["upstream"].as_str(), Some("http://127.0.0.1:8080"));
        assert!(out.warnings.iter().any(|w| w.contains("IP literal or localhost")));
        assert!(out.warnings.iter().any(|w| w.contains("rewrote the path")));
        assert!(out.toml.contains("ProxyPassReverse"), "every directive is accounted for");
    }

    #[test]
    fn vhosts_aliases_redirect_vhost_and_headers() {
        let conf = r#"
<VirtualHost *:80>
  ServerName app.example.com
  Redirect permanent / https://app.example.com/
</VirtualHost>
<VirtualHost *:443>
  ServerName app.example.com:443
  ServerAlias www.example.com
  SSLEngine on
  Header always set Strict-Transport-Security "max-age=63072000"
  Header always set X-Frame-Options DENY
  DocumentRoot /var/www/spa
  <Location />
    AuthType openid-connect
    Require valid-user
  </Location>
</VirtualHost>
"#;
        let out = migrate_apache(conf);
        let v = parse_toml(&out);
        let hosts = v["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0]["name"].as_str(), Some("app.example.com"));
        assert_eq!(hosts[1]["name"].as_str(), Some("www.example.com"));
        assert_eq!(hosts[0]["static_root"].as_str(), Some("/srv/spa"));
        assert_eq!(hosts[0]["security_headers"]["hsts"].as_str(), Some("max-age=63072000"));
        assert_eq!(hosts[0]["security_headers"]["content_security_policy"].as_str(), Some("frame-ancestors 'none'"));
        assert!(out.toml.contains("HTTP-to-HTTPS redirect"));
        assert!(out.toml.contains("SSLEngine on: not needed"));
    }

    #[test]
    fn claim_headers_follow_pass_claims_as() {
        let v = parse_toml(&migrate_apache("OIDCPassClaimsAs headers\nOIDCPassAccessToken Off\n"));
        assert_eq!(v["hosts"][0]["claim_headers"].as_str(), Some("mod_auth_openidc"));
        assert_eq!(v["hosts"][0]["claim_headers_access_token"].as_bool(), Some(false));
        let v = parse_toml(&migrate_apache("OIDCPassClaimsAs environment\n"));
        assert_eq!(v["hosts"][0]["claim_headers"].as_str(), Some("none"));
    }

    #[test]
    fn unknown_directives_get_comments_and_unbalanced_sections_are_reported() {
        let out = migrate_apache("OIDCPreservePost On\n<Location /x>\nAuthType openid-connect\nRequire valid-user\n");
        assert!(out.toml.contains("# migrate: line 1: OIDCPreservePost On: no equivalent"), "{}", out.toml);
        assert!(out.warnings.iter().any(|w| w.contains("never closed")));
        parse_toml(&out);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
        let out = migrate_apache("<Location /x>\nAuthType openid-connect\nRequire claim \"name:Jo \\\"Q\\\" Public\"\n</Location>\n");
        let v = parse_toml(&out);
        assert_eq!(route(&routes(&v, 0), "/x")["claims"][0]["equals"].as_str(), Some("Jo \"Q\" Public"));
    }

    /// Plausible values for the variables an output references (and only those: a variable the output uses but
    /// does not list would make the loader fail, as it would for the operator).
    fn env_for(out: &MigrateOutput) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| {
            if !out.env_vars.iter().any(|v| v == name) {
                return None;
            }
            Some(match name {
                "SESSION_KEY" => "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string(),
                "ENTRA_TENANT_ID" => "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string(),
                "OIDC_ISSUER" => "https://idp.example.com".to_string(),
                other => format!("test-{}", other.to_ascii_lowercase()),
            })
        }
    }

    #[test]
    fn fixture_outputs_pass_the_config_loader() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apache");
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("conf") {
                continue;
            }
            let out = migrate_apache(&std::fs::read_to_string(&path).expect("fixture"));
            let env = env_for(&out);
            let cfg = crate::config::load_str_with_env(&out.toml, std::path::Path::new("migrated.toml"), &env)
                .unwrap_or_else(|e| panic!("{}: output does not load: {e}\n{}", path.display(), out.toml));
            assert!(!cfg.hosts.is_empty());
            // Fail closed: every host ends with a catch-all that is not public unless Apache said so.
            for h in &cfg.hosts {
                assert!(!h.routes.is_empty(), "{}: {}", path.display(), h.name);
            }
        }
    }

    #[test]
    fn small_outputs_pass_the_config_loader() {
        for conf in [
            "",
            README,
            "ProxyPass / https://app.internal:8443/\n",
            "<Location /x>\nAuthType openid-connect\nRequire claim \"a~b\"\n</Location>\n",
            "OIDCProviderMetadataURL https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration\n",
        ] {
            let out = migrate_apache(conf);
            let env = env_for(&out);
            if let Err(e) = crate::config::load_str_with_env(&out.toml, std::path::Path::new("m.toml"), &env) {
                panic!("{conf:?}: {e}\n{}", out.toml);
            }
        }
    }

    #[test]
    fn a_stray_continuation_never_hides_a_secret() {
        for conf in [
            "ServerName a.example.com \\\nOIDCClientSecret TOPSECRET\n",
            "OIDCScope \"openid \\\nOIDCCryptoPassphrase TOPSECRET\n",
            "Foo \"\\\" \\\nOIDCRedisCachePassword TOPSECRET\n",
            "Foo bar OIDCClientSecret TOPSECRET\n",
        ] {
            let out = migrate_apache(conf);
            assert!(!out.toml.contains("TOPSECRET"), "{conf:?}:\n{}", out.toml);
            assert!(out.warnings.iter().all(|w| !w.contains("TOPSECRET")), "{conf:?}");
        }
        // The joined directive is still read as what it is.
        let out = migrate_apache("ServerName a.example.com \\\nOIDCClientSecret TOPSECRET\n");
        assert!(out.warnings.iter().any(|w| w.contains("OIDCClientSecret was not copied")), "{:?}", out.warnings);
        assert_eq!(parse_toml(&out)["hosts"][0]["name"].as_str(), Some("a.example.com"));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// A value as an operator might write it: plain, quoted, with escapes, unicode, `${...}`, `#`, `\`.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9_./:-]{1,20}",
                "\"[a-zA-Z0-9 _./:~@#$\\{}\\\\-]{0,20}\"",
                "'[^'\\n\\r]{0,12}'",
                "[\\PC]{1,8}",
            ]
        }

        fn line() -> impl Strategy<Value = String> {
            let directive = prop_oneof![
                Just("OIDCProviderMetadataURL"), Just("OIDCClientID"), Just("OIDCRedirectURI"), Just("OIDCScope"),
                Just("OIDCSessionInactivityTimeout"), Just("OIDCSessionMaxDuration"), Just("OIDCCacheType"),
                Just("OIDCRedisCacheServer"), Just("OIDCOAuthVerifyAudience"), Just("OIDCPassClaimsAs"),
                Just("OIDCUnAuthAction"), Just("OIDCCookieDomain"), Just("ServerName"), Just("ServerAlias"),
                Just("ProxyPass"), Just("DocumentRoot"), Just("Header"), Just("AuthType"), Just("Require"),
                Just("Require claim"), Just("SomethingElse"),
            ];
            let section = prop_oneof![
                Just("<Location"), Just("</Location>"), Just("<LocationMatch"), Just("</LocationMatch>"),
                Just("<VirtualHost"), Just("</VirtualHost>"), Just("<RequireAll>"), Just("</RequireAll>"),
                Just("<RequireAny>"), Just("</RequireAny>"), Just("<IfModule"), Just("</IfModule>"),
            ];
            prop_oneof![
                (directive, proptest::collection::vec(value(), 0..3)).prop_map(|(d, v)| format!("{d} {}", v.join(" "))),
                (section, value()).prop_map(|(s, v)| if s.ends_with('>') { s.to_string() } else { format!("{s} {v}>") }),
                Just("OIDCClientSecret \"PROPSECRET-1\"".to_string()),
                Just("OIDCCryptoPassphrase PROPSECRET-2 PROPSECRET-3".to_string()),
                Just("  # comment \\".to_string()),
                value().prop_map(|v| format!("{v} \\")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Whatever the input, the output is TOML and no secret value leaks into it or the warnings.
            #[test]
            fn output_is_toml_and_never_leaks(lines in proptest::collection::vec(line(), 0..25)) {
                let out = migrate_apache(&lines.join("\n"));
                prop_assert!(toml::from_str::<toml::Value>(&out.toml).is_ok(), "not TOML:\n{}", out.toml);
                prop_assert!(!out.toml.contains("PROPSECRET"));
                prop_assert!(out.warnings.iter().all(|w| !w.contains("PROPSECRET")));
            }
        }
    }

    #[test]
    fn fixtures_convert_to_valid_toml_without_secrets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apache");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("conf") {
                continue;
            }
            n += 1;
            let text = std::fs::read_to_string(&path).expect("fixture");
            let out = migrate_apache(&text);
            let v = parse_toml(&out);
            assert!(!v["hosts"].as_array().unwrap().is_empty(), "{}", path.display());
            // Fixtures mark their secret values with the word FIXTURESECRET.
            assert!(!out.toml.contains("FIXTURESECRET"), "{}: secret copied:\n{}", path.display(), out.toml);
            assert!(out.warnings.iter().all(|w| !w.contains("FIXTURESECRET")), "{}", path.display());
        }
        assert!(n >= 4, "expected at least 4 fixtures, found {n}");
    }
}
