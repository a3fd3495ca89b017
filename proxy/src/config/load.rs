//! Reading and validating a config file: TOML text in, a [`Config`] or one precise error out.
//!
//! Four steps, each able to say `file:line: key: what is wrong`:
//! 1. parse the TOML into a tree that keeps the byte span of every key and value ([`toml::de::DeTable`]), and index
//!    those spans by dotted path (`hosts[0].routes[2].path`) so that any later check can find its line;
//! 2. expand `${VAR}` inside string values of that tree (never in the text, so an environment value cannot inject
//!    TOML);
//! 3. deserialize the tree into the raw shape ([`super::raw`]); serde's errors carry a span, turned into a path;
//! 4. build the runtime [`Config`]: parse addresses, CIDRs, durations, URLs and algorithms once, read `_file`
//!    secrets, apply defaults and the rules that keep the sidecar fail-closed.
//!
//! Error messages never contain a secret's value: a bad `client_secret`, key or Redis URL is described, not echoed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::env::{self, Lookup};
use super::raw::*;
use super::*;

/// What is wrong with a config file, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    /// `file:line: key: what is wrong`
    #[error("{file}:{line}: {key}: {message}")]
    Invalid { file: String, line: usize, key: String, message: String },
}

/// Reads and validates `path`, taking `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &env::process_env)
}

/// Reads and validates `path`, taking `${VAR}` from `env`.
pub fn load_with_env(path: &Path, env: Lookup<'_>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { file: path.display().to_string(), source })?;
    load_str_with_env(&text, path, env)
}

/// Validates `text` as if read from `path` (used in messages and to resolve relative `_file` paths), taking
/// `${VAR}` from the process environment.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    load_str_with_env(text, path, &env::process_env)
}

/// Validates `text` as if read from `path`, taking `${VAR}` from `env`. Tests use this with a map so that they
/// never touch the process environment.
pub fn load_str_with_env(text: &str, path: &Path, env: Lookup<'_>) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let (mut doc, errors) = DeTable::parse_recoverable(text);
    let index = SpanIndex::build(text, &doc);
    let ctx = Ctx { file, dir, index };
    if let Some(error) = errors.into_iter().next() {
        return Err(ctx.syntax_error(&error));
    }
    for (k, v) in doc.get_mut().iter_mut() {
        expand_env(v, k.get_ref(), env, &ctx)?;
    }
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| ctx.serde_error(&e))?;
    ctx.build(raw)
}

/// Decodes a session key as written in the file or `keys_file`: base64, standard or URL-safe alphabet, padded or
/// not, of exactly 32 bytes. The runtime [`SessionConfig::keys`] hold them re-encoded as standard padded base64.
pub fn decode_session_key(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
}

// === impl SpanIndex ===

/// Byte spans of every key and value of the file, by dotted path, so that any check can name its line.
struct SpanIndex {
    entries: Vec<SpanEntry>,
    by_path: HashMap<String, usize>,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    text: String,
}

struct SpanEntry {
    path: String,
    key: Option<Range<usize>>,
    value: Range<usize>,
    /// A `[table]` or `[[array]]` header: where the keys of the following lines belong.
    header: bool,
}

impl SpanIndex {
    fn build(text: &str, root: &Spanned<DeTable<'_>>) -> Self {
        let mut index = SpanIndex {
            text: text.to_string(),
            entries: Vec::new(),
            by_path: HashMap::new(),
            line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect(),
        };
        for (k, v) in root.get_ref().iter() {
            index.walk(k.get_ref().to_string(), Some(k.span()), v);
        }
        index
    }

    fn walk(&mut self, path: String, key: Option<Range<usize>>, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    self.walk(format!("{path}.{}", k.get_ref()), Some(k.span()), v);
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), None, v);
                }
            }
            _ => {}
        }
        // First definition wins: TOML refuses redefinitions anyway.
        self.by_path.entry(path.clone()).or_insert(self.entries.len());
        let span = value.span();
        let header = matches!(value.get_ref(), DeValue::Table(_))
            && self.text.get(span.clone()).is_some_and(|t| t.starts_with('['));
        self.entries.push(SpanEntry { path, key, value: span, header });
    }

    fn line_at(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// The line of `path`, or of its nearest ancestor present in the file (a missing key points at its table),
    /// or 1.
    fn line_of(&self, path: &str) -> usize {
        let mut path = path;
        loop {
            if let Some(&i) = self.by_path.get(path) {
                let e = &self.entries[i];
                return self.line_at(e.key.as_ref().map_or(e.value.start, |k| k.start));
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return 1,
            }
        }
    }

    /// The path an error span belongs to: the entry whose value is exactly that span (a table missing a field),
    /// else the deepest entry whose key or value contains its start.
    fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        fn deepest<'a>(it: impl Iterator<Item = &'a SpanEntry>) -> Option<&'a str> {
            it.max_by_key(|e| e.path.len()).map(|e| e.path.as_str())
        }
        if let Some(p) = self.table_at(span) {
            return Some(p);
        }
        let inside = |r: &Range<usize>| {
            r.start <= span.start && (span.start < r.end || (r.is_empty() && r.start == span.start))
        };
        deepest(self.entries.iter().filter(|e| inside(&e.value) || e.key.as_ref().is_some_and(inside)))
    }

    /// The table whose value is exactly `span`; `None` for the document itself.
    fn table_at(&self, span: &Range<usize>) -> Option<&str> {
        self.entries.iter().filter(|e| e.value == *span).max_by_key(|e| e.path.len()).map(|e| e.path.as_str())
    }

    /// The key a syntax error is about, from the text of its line: `key = ...` under the last table header above
    /// it, or the header itself. Needed because the parser drops what it could not read from the tree.
    fn key_on_line(&self, offset: usize) -> Option<String> {
        let line = self.line_at(offset);
        let start = self.line_starts[line - 1];
        let end = self.text[start..].find('\n').map_or(self.text.len(), |i| start + i);
        let content = self.text[start..end].trim();
        if let Some(header) = content.strip_prefix('[') {
            let name = header.trim_start_matches('[').split(']').next()?.trim();
            return (!name.is_empty()).then(|| name.to_string());
        }
        let (key, _) = content.split_once('=')?;
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        let table = self
            .entries
            .iter()
            .filter(|e| e.header && e.value.start < start)
            .max_by_key(|e| (e.value.start, e.path.len()))
            .map_or("", |e| e.path.as_str());
        Some(join(table, key))
    }

    /// The last entry that starts before `offset`: the best guess for a syntax error where no tree exists.
    fn path_before(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|e| e.key.as_ref().map_or(e.value.start, |k| k.start) <= offset)
            .max_by_key(|e| (e.key.as_ref().map_or(e.value.start, |k| k.start), e.path.len()))
            .map(|e| e.path.as_str())
    }
}

// === env expansion ===

fn expand_env(value: &mut Spanned<DeValue<'_>>, path: &str, env: Lookup<'_>, ctx: &Ctx) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => match env::expand(s, env) {
            Ok(std::borrow::Cow::Borrowed(_)) => {}
            Ok(std::borrow::Cow::Owned(expanded)) => *s = std::borrow::Cow::Owned(expanded),
            Err(e) => return Err(ctx.invalid_at(span.start, path, e.to_string())),
        },
        DeValue::Table(t) => {
            for (k, v) in t.iter_mut() {
                let child = if path.is_empty() { k.get_ref().to_string() } else { format!("{path}.{}", k.get_ref()) };
                expand_env(v, &child, env, ctx)?;
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                expand_env(v, &format!("{path}[{i}]"), env, ctx)?;
            }
        }
        _ => {}
    }
    Ok(())
}

// === impl Ctx ===

/// What every check needs to report an error: the file name, its directory (for relative `_file` paths) and the
/// span index.
struct Ctx {
    file: String,
    dir: PathBuf,
    index: SpanIndex,
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Ctx {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.index.line_of(key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn invalid_at(&self, offset: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            line: self.index.line_at(offset),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        let key = self
            .index
            .key_on_line(offset)
            .or_else(|| self.index.path_before(offset).map(str::to_string))
            .unwrap_or_else(|| "(toml)".to_string());
        let message = format!("TOML syntax: {}", e.message().trim_end());
        self.invalid_at(offset, &key, message)
    }

    fn serde_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end();
        let missing = between(message, "missing field `", "`");
        // A missing field is reported on the span of its table: a table of the file, or the whole document.
        let found = if missing.is_some() { self.index.table_at(&span) } else { self.index.path_at(&span) };
        let mut key = found.unwrap_or("").to_string();
        let message = if let Some(field) = missing {
            key = join(&key, field);
            "missing (required)".to_string()
        } else if let Some(field) = between(message, "unknown field `", "`") {
            let expected = message.split_once(", expected ").map_or("", |(_, rest)| rest);
            let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            if !key.ends_with(field) {
                key = join(&key, field);
            }
            match closest(field, &names) {
                Some(best) => format!("unknown key; did you mean `{best}`?"),
                None if names.is_empty() => "unknown key".to_string(),
                None => format!("unknown key; expected one of {}", names.join(", ")),
            }
        } else {
            type_hint(&key, message)
        };
        let line = self.index.line_at(span.start);
        ConfigError::Invalid { file: self.file.clone(), line, key: if key.is_empty() { "(root)".into() } else { key }, message }
    }

    /// Whether the file wrote this key (to blame the spelling it used, e.g. `x` or `x_file`).
    fn has(&self, path: &str) -> bool {
        self.index.by_path.contains_key(path)
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) }
    }

    /// A secret given inline as `name` or as a file path in `name_file`, never both. A file's content loses its
    /// trailing newline (how `echo` and most secret mounts write it).
    fn secret(&self, section: &str, name: &str, inline: Option<String>, file: Option<String>) -> Result<Option<Secret>> {
        let key = format!("{section}.{name}");
        let file_key = format!("{section}.{name}_file");
        let value = match (inline, file) {
            (Some(_), Some(_)) => return Err(self.invalid(&file_key, format!("set only one of {name} and {name}_file"))),
            (Some(v), None) => v,
            (None, Some(path)) => self.read_secret_file(&file_key, &path)?,
            (None, None) => return Ok(None),
        };
        if value.trim().is_empty() {
            return Err(self.invalid(&key, "is empty"));
        }
        Ok(Some(Secret(value)))
    }

    fn read_secret_file(&self, key: &str, path: &str) -> Result<String> {
        if path.trim().is_empty() {
            return Err(self.invalid(key, "is empty: give the path of the file holding the secret"));
        }
        let full = self.resolve(path);
        let mut text = std::fs::read_to_string(&full)
            .map_err(|e| self.invalid(key, format!("cannot read {}: {e}", full.display())))?;
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        if text.trim().is_empty() {
            return Err(self.invalid(key, format!("{} is empty", full.display())));
        }
        Ok(text)
    }

    fn duration(&self, key: &str, raw: Option<String>, default: Duration, allow_zero: bool) -> Result<Duration> {
        Ok(self.optional_duration(key, raw, allow_zero)?.unwrap_or(default))
    }

    /// A duration whose absence means something of its own (no limit, say), not a default value.
    fn optional_duration(&self, key: &str, raw: Option<String>, allow_zero: bool) -> Result<Option<Duration>> {
        let Some(text) = raw else { return Ok(None) };
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            self.invalid(key, format!("`{text}` is not a duration ({e}); write e.g. \"30s\", \"5m\", \"8h\""))
        })?;
        if d.is_zero() && !allow_zero {
            return Err(self.invalid(key, "must be longer than zero"));
        }
        Ok(Some(d))
    }

    fn list(&self, key: &str, raw: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
        let Some(items) = raw else { return Ok(None) };
        for (i, item) in items.iter().enumerate() {
            if item.trim().is_empty() {
                return Err(self.invalid(&format!("{key}[{i}]"), "is empty"));
            }
        }
        Ok(Some(items.into_iter().map(|s| s.trim().to_string()).collect()))
    }

    fn required(&self, key: &str, raw: Option<String>, what: &str) -> Result<String> {
        match raw {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Some(_) => Err(self.invalid(key, format!("is empty: {what}"))),
            None => Err(self.invalid(key, format!("missing: {what}"))),
        }
    }

    fn local_path(&self, key: &str, raw: Option<String>, default: &str) -> Result<String> {
        let p = raw.unwrap_or_else(|| default.to_string());
        check_path(&p).map_err(|why| self.invalid(key, why))?;
        Ok(p)
    }

    // === the sections ===

    fn build(&self, raw: RawConfig) -> Result<Config> {
        let server = self.server(raw.server)?;
        let provider = self.provider(raw.provider)?;
        let identity = self.identity(raw.identity)?;
        let session = self.session(raw.session, &server)?;
        let hosts = self.hosts(raw.hosts)?;
        Ok(Config { source: PathBuf::from(&self.file), server, provider, identity, session, hosts })
    }

    fn server(&self, raw: RawServer) -> Result<ServerConfig> {
        let listen = match raw.listen {
            Some(s) => parse_listen(&s).ok_or_else(|| self.invalid("server.listen", not_an_address(&s)))?,
            None => SocketAddr::from(([0, 0, 0, 0], 80)),
        };
        let admin_listen = match raw.admin_listen {
            Some(s) => parse_listen(&s).ok_or_else(|| self.invalid("server.admin_listen", not_an_address(&s)))?,
            None => SocketAddr::from(([127, 0, 0, 1], 9901)),
        };
        if admin_listen == listen {
            return Err(self.invalid("server.admin_listen", format!("{admin_listen} is also server.listen")));
        }
        let threads = match raw.threads {
            Some(0) => return Err(self.invalid("server.threads", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let mut trusted_proxies = Vec::new();
        for (i, text) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
            let t = text.trim();
            let net = IpNet::from_str(t)
                .or_else(|_| IpAddr::from_str(t).map(IpNet::from))
                .map_err(|_| {
                    self.invalid(
                        &format!("server.trusted_proxies[{i}]"),
                        format!("`{text}` is not a CIDR (write e.g. \"10.0.0.0/16\") or an IP address"),
                    )
                })?;
            trusted_proxies.push(net.trunc());
        }
        let health_path = self.local_path("server.health_path", raw.health_path, "/healthz")?;
        Ok(ServerConfig {
            listen,
            threads,
            trusted_proxies,
            health_path,
            admin_listen,
            grace_period: self.duration("server.grace_period", raw.grace_period, Duration::from_secs(10), true)?,
            shutdown_timeout: self.duration("server.shutdown_timeout", raw.shutdown_timeout, Duration::from_secs(5), true)?,
            upstream_connect_timeout: self.duration(
                "server.upstream_connect_timeout",
                raw.upstream_connect_timeout,
                Duration::from_secs(1),
                false,
            )?,
            upstream_read_timeout: self.duration(
                "server.upstream_read_timeout",
                raw.upstream_read_timeout,
                Duration::from_secs(60),
                false,
            )?,
            upstream_idle_timeout: self.duration(
                "server.upstream_idle_timeout",
                raw.upstream_idle_timeout,
                Duration::from_secs(4),
                true,
            )?,
            downstream_idle_timeout: self.optional_duration(
                "server.downstream_idle_timeout",
                raw.downstream_idle_timeout,
                false,
            )?,
            log_format: match raw.log_format {
                Some(RawLogFormat::Text) => LogFormat::Text,
                Some(RawLogFormat::Json) | None => LogFormat::Json,
            },
        })
    }

    fn provider(&self, raw: RawProvider) -> Result<ProviderConfig> {
        let p = "provider";
        let (issuer, mut extra_issuers, required_tenant, entra) = match (raw.tenant_id, raw.issuer) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    "provider.issuer",
                    "set either tenant_id (Entra ID: fills in issuer and discovery) or issuer, not both",
                ))
            }
            (None, None) => {
                return Err(self.invalid(
                    p,
                    "no provider: set issuer = \"https://...\", or tenant_id = \"...\" for Entra ID",
                ))
            }
            (Some(tid), None) => {
                let tid = tid.trim().to_string();
                check_tenant(&tid).map_err(|why| self.invalid("provider.tenant_id", why))?;
                if let Some(required) = &raw.required_tenant {
                    if required.trim() != tid {
                        return Err(self.invalid(
                            "provider.required_tenant",
                            format!("`{required}` differs from tenant_id `{tid}` (tenant_id already requires its tenant)"),
                        ));
                    }
                }
                let issuer = format!("https://login.microsoftonline.com/{tid}/v2.0");
                (issuer, vec![format!("https://sts.windows.net/{tid}/")], Some(tid), true)
            }
            (None, Some(issuer)) => {
                let issuer = issuer.trim().to_string();
                check_provider_url(&issuer).map_err(|why| self.invalid("provider.issuer", why))?;
                let required = match raw.required_tenant {
                    Some(t) if t.trim().is_empty() => return Err(self.invalid("provider.required_tenant", "is empty")),
                    Some(t) => Some(t.trim().to_string()),
                    None => None,
                };
                (issuer, Vec::new(), required, false)
            }
        };
        let discovery_url = match raw.discovery_url {
            Some(url) => {
                let url = url.trim().to_string();
                check_provider_url(&url).map_err(|why| self.invalid("provider.discovery_url", why))?;
                url
            }
            None => format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
        };
        for (i, extra) in self.list("provider.extra_issuers", raw.extra_issuers)?.unwrap_or_default().into_iter().enumerate() {
            url::Url::parse(&extra).map_err(|e| {
                self.invalid(&format!("provider.extra_issuers[{i}]"), format!("`{extra}` is not a URL: {e}"))
            })?;
            if extra != issuer && !extra_issuers.contains(&extra) {
                extra_issuers.push(extra);
            }
        }
        let client_id = self.required(
            "provider.client_id",
            raw.client_id,
            "the application (client) id registered at the provider",
        )?;
        let client_secret = self.secret(p, "client_secret", raw.client_secret, raw.client_secret_file)?;
        let private_key = self.secret(p, "private_key", raw.private_key, raw.private_key_file)?;
        let client_auth = match raw.client_auth.unwrap_or(RawClientAuth::ClientSecretBasic) {
            // A client_secret next to private_key_jwt is left unused (kept in the config, never sent).
            RawClientAuth::PrivateKeyJwt => {
                let Some(key_pem) = private_key else {
                    return Err(self.invalid(
                        "provider.client_auth",
                        "private_key_jwt needs private_key_file (or private_key): the PEM key of the registered certificate",
                    ));
                };
                if !looks_like_private_key_pem(key_pem.expose()) {
                    return Err(self.invalid(
                        if self.has("provider.private_key") { "provider.private_key" } else { "provider.private_key_file" },
                        "is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)",
                    ));
                }
                let x5t = match raw.certificate_thumbprint {
                    Some(t) => {
                        check_thumbprint(&t).map_err(|why| self.invalid("provider.certificate_thumbprint", why))?;
                        Some(t.trim().to_string())
                    }
                    None => None,
                };
                let kid = match raw.private_key_id.map(|k| k.trim().to_string()) {
                    Some(k) if k.is_empty() => return Err(self.invalid("provider.private_key_id", "is empty")),
                    other => other,
                };
                ClientAuth::PrivateKeyJwt { key_pem, x5t, kid }
            }
            method => {
                if private_key.is_some() {
                    let key = if self.has("provider.private_key") { "provider.private_key" } else { "provider.private_key_file" };
                    return Err(self.invalid(key, "is only used with client_auth = \"private_key_jwt\""));
                }
                if raw.certificate_thumbprint.is_some() {
                    return Err(self.invalid(
                        "provider.certificate_thumbprint",
                        "is only used with client_auth = \"private_key_jwt\"",
                    ));
                }
                if raw.private_key_id.is_some() {
                    return Err(self.invalid("provider.private_key_id", "is only used with client_auth = \"private_key_jwt\""));
                }
                if method == RawClientAuth::ClientSecretPost { ClientAuth::ClientSecretPost } else { ClientAuth::ClientSecretBasic }
            }
        };
        let audiences = match self.list("provider.audiences", raw.audiences)? {
            Some(a) if !a.is_empty() => a,
            _ => {
                return Err(self.invalid(
                    "provider.audiences",
                    "needs at least one accepted `aud` of access tokens (e.g. \"api://myapp-api\" or the API's client id)",
                ))
            }
        };
        let clock_skew = self.duration("provider.clock_skew", raw.clock_skew, Duration::from_secs(60), true)?;
        if clock_skew > Duration::from_secs(600) {
            return Err(self.invalid("provider.clock_skew", "is above 10 minutes: expired tokens would pass"));
        }
        let algorithms = match raw.algorithms {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(list) if list.is_empty() => {
                return Err(self.invalid("provider.algorithms", "is empty: no token could ever be accepted"))
            }
            Some(list) => {
                let mut algs = Vec::new();
                for (i, name) in list.iter().enumerate() {
                    let alg = parse_algorithm(name).map_err(|why| self.invalid(&format!("provider.algorithms[{i}]"), why))?;
                    if !algs.contains(&alg) {
                        algs.push(alg);
                    }
                }
                algs
            }
        };
        let scopes = match self.list("provider.scopes", raw.scopes)? {
            None => ["openid", "profile", "email", "offline_access"].map(String::from).to_vec(),
            Some(s) if !s.iter().any(|x| x == "openid") => {
                return Err(self.invalid("provider.scopes", "must include \"openid\" (OpenID Connect login needs it)"))
            }
            Some(s) => s,
        };
        Ok(ProviderConfig {
            issuer,
            discovery_url,
            extra_issuers,
            client_id,
            client_secret,
            client_auth,
            audiences,
            required_tenant,
            clock_skew,
            algorithms,
            scopes,
            jwks_refresh: self.duration("provider.jwks_refresh", raw.jwks_refresh, Duration::from_secs(3600), false)?,
            jwks_refetch_cooldown: self.duration(
                "provider.jwks_refetch_cooldown",
                raw.jwks_refetch_cooldown,
                Duration::from_secs(30),
                false,
            )?,
            entra,
        })
    }

    fn identity(&self, raw: RawIdentity) -> Result<IdentityConfig> {
        let header_prefix = raw.header_prefix.unwrap_or_else(|| "X-Auth-".to_string());
        check_header_prefix(&header_prefix).map_err(|why| self.invalid("identity.header_prefix", why))?;
        let signing_key = self.secret("identity", "signing_key", raw.signing_key, raw.signing_key_file)?;
        if let Some(key) = &signing_key {
            if !looks_like_private_key_pem(key.expose()) {
                let k = if self.has("identity.signing_key") { "identity.signing_key" } else { "identity.signing_key_file" };
                return Err(self.invalid(k, "is not a PEM private key (PKCS#8 P-256: -----BEGIN PRIVATE KEY-----)"));
            }
        }
        let assertion_issuer = match raw.assertion_issuer {
            Some(s) if s.trim().is_empty() => return Err(self.invalid("identity.assertion_issuer", "is empty")),
            Some(s) => s.trim().to_string(),
            None => "oidc-sidecar".to_string(),
        };
        Ok(IdentityConfig {
            header_prefix,
            assertion_ttl: self.duration("identity.assertion_ttl", raw.assertion_ttl, Duration::from_secs(300), false)?,
            assertion_issuer,
            signing_key,
        })
    }

    fn session(&self, raw: RawSession, server: &ServerConfig) -> Result<SessionConfig> {
        let s = "session";
        let store = match raw.store {
            Some(RawStore::Redis) => SessionStore::Redis,
            Some(RawStore::Cookie) | None => SessionStore::Cookie,
        };
        let cookie_name = raw.cookie_name.unwrap_or_else(|| "__Host-oidc_session".to_string());
        check_cookie_name(&cookie_name).map_err(|why| self.invalid("session.cookie_name", why))?;
        let cookie_domain = match raw.cookie_domain {
            None => None,
            Some(d) => {
                if cookie_name.starts_with("__Host-") {
                    return Err(self.invalid(
                        "session.cookie_domain",
                        format!("cannot be set with the cookie name `{cookie_name}`: browsers refuse a __Host- cookie with a Domain; choose another cookie_name (e.g. \"__Secure-oidc_session\")"),
                    ));
                }
                let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
                check_domain(&d).map_err(|why| self.invalid("session.cookie_domain", why))?;
                Some(d)
            }
        };
        let keys = match (raw.keys, raw.keys_file) {
            (Some(_), Some(_)) => return Err(self.invalid("session.keys_file", "set only one of keys and keys_file")),
            (Some(keys), None) => {
                let mut out = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    let bytes = decode_session_key(k).ok_or_else(|| {
                        self.invalid(&format!("session.keys[{i}]"), BAD_KEY)
                    })?;
                    out.push(Secret(base64::engine::general_purpose::STANDARD.encode(bytes)));
                }
                out
            }
            (None, Some(path)) => {
                let text = self.read_secret_file("session.keys_file", &path)?;
                let mut out = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let bytes = decode_session_key(line).ok_or_else(|| {
                        self.invalid("session.keys_file", format!("line {} of {path}: {BAD_KEY}", n + 1))
                    })?;
                    out.push(Secret(base64::engine::general_purpose::STANDARD.encode(bytes)));
                }
                if out.is_empty() {
                    return Err(self.invalid("session.keys_file", format!("{path} holds no key")));
                }
                out
            }
            (None, None) => Vec::new(),
        };
        let redis_url = self.secret(s, "redis_url", raw.redis_url, raw.redis_url_file)?;
        let redis_key = if self.has("session.redis_url_file") { "session.redis_url_file" } else { "session.redis_url" };
        match (store, &redis_url) {
            (SessionStore::Redis, None) => {
                return Err(self.invalid("session.store", "store = \"redis\" needs redis_url (or redis_url_file)"))
            }
            (SessionStore::Cookie, Some(_)) => {
                return Err(self.invalid(redis_key, "is only used with store = \"redis\""))
            }
            (SessionStore::Redis, Some(url)) => check_redis_url(url.expose()).map_err(|why| self.invalid(redis_key, why))?,
            (SessionStore::Cookie, None) => {}
        }
        let inactivity_timeout =
            self.duration("session.inactivity_timeout", raw.inactivity_timeout, Duration::from_secs(3600), false)?;
        let max_lifetime = self.duration("session.max_lifetime", raw.max_lifetime, Duration::from_secs(8 * 3600), false)?;
        let max_cookie_bytes = match raw.max_cookie_bytes {
            None => 12 * 1024,
            Some(0) => return Err(self.invalid("session.max_cookie_bytes", "must be at least 1")),
            Some(n) if n <= 16 * 1024 => n,
            Some(n) => {
                return Err(self.invalid(
                    "session.max_cookie_bytes",
                    format!("{n} is above 16384: the ALB refuses requests whose headers pass 16 KB"),
                ))
            }
        };
        let rp = raw.paths;
        let paths = EndpointPaths {
            login: self.local_path("session.paths.login", rp.login, "/oauth2/login")?,
            callback: self.local_path("session.paths.callback", rp.callback, "/oauth2/callback")?,
            logout: self.local_path("session.paths.logout", rp.logout, "/oauth2/logout")?,
            userinfo: self.local_path("session.paths.userinfo", rp.userinfo, "/oauth2/userinfo")?,
            frontchannel_logout: self.local_path(
                "session.paths.frontchannel_logout",
                rp.frontchannel_logout,
                "/oauth2/frontchannel-logout",
            )?,
        };
        let named = [
            ("login", &paths.login),
            ("callback", &paths.callback),
            ("logout", &paths.logout),
            ("userinfo", &paths.userinfo),
            ("frontchannel_logout", &paths.frontchannel_logout),
        ];
        for (i, (name, path)) in named.iter().enumerate() {
            if *path == &server.health_path {
                return Err(self.invalid(&format!("session.paths.{name}"), format!("`{path}` is also server.health_path")));
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, p)| p == path) {
                return Err(self.invalid(&format!("session.paths.{name}"), format!("`{path}` is also session.paths.{other}")));
            }
        }
        Ok(SessionConfig {
            store,
            cookie_name,
            cookie_domain,
            keys,
            inactivity_timeout,
            max_lifetime,
            refresh_margin: self.duration("session.refresh_margin", raw.refresh_margin, Duration::from_secs(60), true)?,
            max_cookie_bytes,
            redis_url,
            redis_client_cache: raw.redis_client_cache.unwrap_or(true),
            paths,
        })
    }

    fn hosts(&self, raw: Vec<RawHost>) -> Result<Vec<HostConfig>> {
        if raw.is_empty() {
            return Err(self.invalid(
                "hosts",
                "no [[hosts]]: add at least one (name = \"*\" matches any host)",
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut hosts = Vec::with_capacity(raw.len());
        for (i, h) in raw.into_iter().enumerate() {
            let host = self.host(i, h)?;
            if let Some(first) = seen.get(&host.name) {
                return Err(self.invalid(
                    &format!("hosts[{i}].name"),
                    format!("host `{}` is already defined at line {first}", host.name),
                ));
            }
            seen.insert(host.name.clone(), host.line);
            hosts.push(host);
        }
        Ok(hosts)
    }

    fn host(&self, i: usize, raw: RawHost) -> Result<HostConfig> {
        let at = format!("hosts[{i}]");
        let key = |k: &str| format!("{at}.{k}");
        let name = raw.name.trim().to_ascii_lowercase();
        check_host_name(&name).map_err(|why| self.invalid(&key("name"), why))?;
        let backend = match (raw.upstream, raw.static_root) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(&key("static_root"), "set only one of upstream and static_root"))
            }
            (None, None) => {
                return Err(self.invalid(
                    &at,
                    "needs upstream = \"http://127.0.0.1:8000\" or static_root = \"/srv/spa\"",
                ))
            }
            (Some(u), None) => {
                let addr = parse_upstream(&u).map_err(|why| self.invalid(&key("upstream"), why))?;
                Backend::Upstream { addr, tls: false, sni: String::new() }
            }
            (None, Some(root)) => {
                if root.trim().is_empty() {
                    return Err(self.invalid(&key("static_root"), "is empty"));
                }
                Backend::Static { root: self.resolve(root.trim()) }
            }
        };
        let claim_headers = match (raw.claim_headers, raw.claim_headers_access_token) {
            (Some(RawClaimHeaders::ModAuthOpenidc), at) => ClaimHeaders::ModAuthOpenidc { access_token: at.unwrap_or(false) },
            (_, Some(true)) => {
                return Err(self.invalid(
                    &key("claim_headers_access_token"),
                    "is only used with claim_headers = \"mod_auth_openidc\"",
                ))
            }
            _ => ClaimHeaders::None,
        };
        let mut allowed_origins = Vec::new();
        for (j, o) in raw.allowed_origins.unwrap_or_default().iter().enumerate() {
            let origin = parse_origin(o).map_err(|why| self.invalid(&format!("{at}.allowed_origins[{j}]"), why))?;
            if !allowed_origins.contains(&origin) {
                allowed_origins.push(origin);
            }
        }
        let external_url = match raw.external_url {
            None => None,
            Some(u) => Some(parse_external_url(&u).map_err(|why| self.invalid(&key("external_url"), why))?),
        };
        let security_headers = match raw.security_headers {
            None => None,
            Some(sh) => {
                let header = |name: &str, v: Option<String>| -> Result<Option<String>> {
                    match v {
                        None => Ok(None),
                        Some(v) if http::HeaderValue::from_str(v.trim()).is_ok() && !v.trim().is_empty() => {
                            Ok(Some(v.trim().to_string()))
                        }
                        Some(_) => Err(self.invalid(
                            &format!("{at}.security_headers.{name}"),
                            "is not a valid header value (empty, or control characters)",
                        )),
                    }
                };
                Some(SecurityHeaders {
                    hsts: header("hsts", sh.hsts)?,
                    content_type_options: sh.content_type_options.unwrap_or(true),
                    referrer_policy: header("referrer_policy", sh.referrer_policy)?,
                    content_security_policy: header("content_security_policy", sh.content_security_policy)?,
                })
            }
        };
        if raw.routes.is_empty() {
            return Err(self.invalid(
                &at,
                "has no [[hosts.routes]]: every request would be denied; add at least one route",
            ));
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.routes.len());
        for (j, r) in raw.routes.into_iter().enumerate() {
            let route = self.route(&format!("{at}.routes[{j}]"), r)?;
            if let Some(earlier) = routes.iter().find(|e| shadows(e, &route)) {
                return Err(self.invalid(
                    &format!("{at}.routes[{j}]"),
                    format!(
                        "never matches: the route at line {} ({}) comes first and takes every request this one would",
                        earlier.line,
                        describe_match(&earlier.path)
                    ),
                ));
            }
            routes.push(route);
        }
        Ok(HostConfig {
            name,
            backend,
            routes,
            login: match raw.login {
                Some(RawLogin::Deny) => LoginMode::Deny,
                Some(RawLogin::Redirect) | None => LoginMode::Redirect,
            },
            forward_authorization: raw.forward_authorization.unwrap_or(true),
            forward_access_token: raw.forward_access_token.unwrap_or(false),
            userinfo_access_token: raw.userinfo_access_token.unwrap_or(false),
            claim_headers,
            allowed_origins,
            security_headers,
            external_url,
            line: self.index.line_of(&at),
        })
    }

    fn route(&self, at: &str, raw: RawRoute) -> Result<RouteConfig> {
        let key = |k: &str| format!("{at}.{k}");
        let path = match (raw.path, raw.exact) {
            (Some(_), Some(_)) => return Err(self.invalid(&key("exact"), "set only one of path (prefix) and exact")),
            (None, None) => return Err(self.invalid(at, "needs path = \"/prefix\" or exact = \"/one/path\"")),
            (Some(p), None) => {
                check_path(&p).map_err(|why| self.invalid(&key("path"), why))?;
                PathMatch::Prefix(p)
            }
            (None, Some(p)) => {
                check_path(&p).map_err(|why| self.invalid(&key("exact"), why))?;
                PathMatch::Exact(p)
            }
        };
        let methods = match raw.methods {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(self.invalid(&key("methods"), "is empty: the route would match nothing (omit it for any method)"))
            }
            Some(list) => {
                let mut out: Vec<http::Method> = Vec::new();
                for (n, m) in list.iter().enumerate() {
                    let upper = m.trim().to_ascii_uppercase();
                    let method = http::Method::from_bytes(upper.as_bytes())
                        .ok()
                        .filter(|_| !upper.is_empty())
                        .ok_or_else(|| self.invalid(&format!("{at}.methods[{n}]"), format!("`{m}` is not an HTTP method")))?;
                    if !out.contains(&method) {
                        out.push(method);
                    }
                }
                Some(out)
            }
        };
        let list = |name: &str, v: Option<Vec<String>>| -> Result<Vec<String>> {
            match self.list(&key(name), v)? {
                Some(l) if l.is_empty() => Err(self.invalid(
                    &key(name),
                    "is empty: give at least one value, or remove the key",
                )),
                Some(l) => Ok(l),
                None => Ok(Vec::new()),
            }
        };
        let mut req = Requirements {
            scopes_all: list("scopes", raw.scopes)?,
            scopes_any: list("scopes_any", raw.scopes_any)?,
            roles_any: list("roles", raw.roles)?,
            roles_all: list("roles_all", raw.roles_all)?,
            groups_any: list("groups", raw.groups)?,
            claims: Vec::new(),
        };
        if let Some(claims) = raw.claims {
            if claims.is_empty() {
                return Err(self.invalid(&key("claims"), "is empty: give at least one rule, or remove the key"));
            }
            for (n, c) in claims.into_iter().enumerate() {
                let ckey = format!("{at}.claims[{n}]");
                let claim = c.claim.trim().to_string();
                if claim.is_empty() || claim.split('.').any(str::is_empty) {
                    return Err(self.invalid(&format!("{ckey}.claim"), "is not a claim name (e.g. \"department\" or \"realm_access.roles\")"));
                }
                let test = match (c.equals, c.contains) {
                    (Some(v), None) => ClaimTest::Equals(v),
                    (None, Some(v)) => ClaimTest::Contains(v),
                    (Some(_), Some(_)) => {
                        return Err(self.invalid(&format!("{ckey}.contains"), "set only one of equals and contains"))
                    }
                    (None, None) => {
                        return Err(self.invalid(&ckey, "needs equals = \"...\" or contains = \"...\""))
                    }
                };
                req.claims.push(ClaimRule { claim, test });
            }
        }
        let has_requirements = req != Requirements::default();
        let access = match (raw.access, has_requirements) {
            (Some(RawAccess::Public), true) => {
                return Err(self.invalid(
                    &key("access"),
                    "\"public\" cannot have requirements (scopes, roles, groups, claims): remove access or them",
                ))
            }
            (Some(RawAccess::Public), false) => Access::Public,
            (_, true) => Access::Require(req),
            (_, false) => Access::Authenticated,
        };
        Ok(RouteConfig { path, methods, access, line: self.index.line_of(at) })
    }
}

const BAD_KEY: &str = "is not base64 of 32 bytes (make one with `openssl rand -base64 32`)";

/// RS, PS, ES and EdDSA: everything an OpenID provider signs with; never `none` nor HMAC.
pub(crate) const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

// === small parsers: each returns why, the caller adds where ===

/// serde speaks Rust types; say it in the file's words.
fn type_hint(key: &str, message: &str) -> String {
    let message = message.replace("expected usize", "expected a whole number (0 or more)");
    const DURATIONS: [&str; 15] = [
        "grace_period", "shutdown_timeout", "upstream_connect_timeout", "upstream_read_timeout",
        "upstream_idle_timeout", "downstream_idle_timeout", "clock_skew", "jwks_refresh", "jwks_refetch_cooldown", "assertion_ttl",
        "inactivity_timeout", "max_lifetime", "refresh_margin", "timeout", "ttl",
    ];
    let leaf = key.rsplit('.').next().unwrap_or(key);
    if message.contains("expected a string") && DURATIONS.contains(&leaf) {
        return format!("{message}: a duration is a string such as \"60s\", \"5m\" or \"8h\"");
    }
    message
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() { child.to_string() } else { format!("{parent}.{child}") }
}

/// The expected name closest to a typo, when it is close enough to be the one meant.
fn closest<'a>(typo: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (levenshtein(&typo.to_ascii_lowercase(), n), *n))
        .filter(|(d, n)| *d <= (n.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn not_an_address(s: &str) -> String {
    format!("`{s}` is not an address: write IP:port, e.g. \"0.0.0.0:80\" or \"127.0.0.1:9901\"")
}

/// `IP:port`, `[v6]:port` or `localhost:port` (as 127.0.0.1).
fn parse_listen(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(addr) = SocketAddr::from_str(s) {
        return Some(addr);
    }
    let port = s.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

/// `http://IP[:port]` or `http://localhost[:port]`, parsed now so the request path never resolves a name
/// (Pingora's `HttpPeer::new` would do a blocking lookup and panic on failure).
fn parse_upstream(u: &str) -> Result<SocketAddr, String> {
    let t = u.trim();
    let lower = t.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &t[7..]
    } else if lower.starts_with("https://") {
        return Err(format!(
            "`{u}`: the upstream is spoken to in plain HTTP (it runs next to the sidecar in the task); write http://"
        ));
    } else {
        return Err(format!("`{u}` is not an upstream URL: write \"http://127.0.0.1:8000\""));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!("`{u}`: an upstream has no path, query or credentials: write \"http://127.0.0.1:8000\""));
    }
    if let Ok(addr) = SocketAddr::from_str(authority) {
        return Ok(addr);
    }
    let bare = authority.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = IpAddr::from_str(bare) {
        return Ok(SocketAddr::new(ip, 80));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("`{u}`: `{p}` is not a port"))?),
        None => (authority, 80),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "`{u}`: the upstream must be an IP address or localhost (no DNS lookups on the request path), e.g. \"http://127.0.0.1:8000\""
    ))
}

/// A path the sidecar matches or answers itself: absolute, and already in the normalized form requests are
/// matched in (a route written with `..` or `//` would never match and so would silently protect nothing).
fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must start with `/`"));
    }
    if p.contains(['?', '#', '\\', '\0']) || p.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("`{p}` is not a path (no query, fragment, backslash, space or control characters)"));
    }
    if p.contains("//") {
        return Err(format!("`{p}` has an empty segment (`//`); requests are matched on normalized paths"));
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("`{p}` has a `.` or `..` segment; requests are matched on normalized paths"));
    }
    Ok(())
}

fn describe_match(p: &PathMatch) -> String {
    match p {
        PathMatch::Prefix(s) => format!("path {s}"),
        PathMatch::Exact(s) => format!("exact {s}"),
    }
}

/// True when `earlier` matches every request `later` could (same rule as the router: a prefix matches itself
/// and what is below it on a segment boundary), so `later` can never be chosen.
fn shadows(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    let methods_covered = match (&earlier.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
    };
    if !methods_covered {
        return false;
    }
    let under = |base: &str, path: &str| {
        let base = base.trim_end_matches('/');
        path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    match (&earlier.path, &later.path) {
        (PathMatch::Prefix(e), PathMatch::Prefix(l)) => under(e, l.trim_end_matches('/')),
        (PathMatch::Prefix(e), PathMatch::Exact(l)) => under(e, l),
        (PathMatch::Exact(e), PathMatch::Exact(l)) => e == l,
        (PathMatch::Exact(_), PathMatch::Prefix(_)) => false,
    }
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let t = name.trim();
    if t.eq_ignore_ascii_case("none") {
        return Err("`none` is refused: it means an unsigned token".into());
    }
    if t.to_ascii_uppercase().starts_with("HS") {
        return Err(format!(
            "`{t}` is refused: HMAC needs a secret shared with the provider; OpenID providers sign with RS/PS/ES/EdDSA"
        ));
    }
    let canonical = if t.eq_ignore_ascii_case("eddsa") { "EdDSA".to_string() } else { t.to_ascii_uppercase() };
    Algorithm::from_str(&canonical).map_err(|_| {
        format!("`{t}` is not an algorithm; accepted: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA")
    })
}

/// A provider URL: https, or plain http only on loopback (local test providers).
fn check_provider_url(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(format!("`{u}`: plain http is allowed only for a loopback provider (tests); use https")),
        other => return Err(format!("`{u}`: scheme `{other}` is not https")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{u}` must not have a query or fragment"));
    }
    Ok(())
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Entra tenant: a GUID or a verified domain. `common`, `organizations` and `consumers` publish a templated
/// issuer that cannot be checked (ramosbugs/openidconnect-rs#216): one tenant per sidecar.
fn check_tenant(tid: &str) -> Result<(), String> {
    if tid.is_empty() {
        return Err("is empty: the directory (tenant) id, a GUID".into());
    }
    if ["common", "organizations", "consumers"].contains(&tid.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{tid}` is multi-tenant: its issuer cannot be checked; give your tenant's id (a GUID)"
        ));
    }
    if !tid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(format!("`{tid}` is not a tenant id (a GUID, or a domain like contoso.onmicrosoft.com)"));
    }
    Ok(())
}

fn looks_like_private_key_pem(pem: &str) -> bool {
    let t = pem.trim();
    t.starts_with("-----BEGIN ") && t.contains("PRIVATE KEY-----") && t.contains("-----END ")
}

/// The certificate thumbprint Entra shows (hex SHA-1, maybe with `:`) or its base64url `x5t` form.
fn check_thumbprint(t: &str) -> Result<(), String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let compact: String = t.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let hex = compact.chars().all(|c| c.is_ascii_hexdigit());
    let len = if hex && (compact.len() == 40 || compact.len() == 64) {
        compact.len() / 2
    } else {
        URL_SAFE_NO_PAD
            .decode(compact.trim_end_matches('='))
            .map_err(|_| format!("`{t}` is neither a hex thumbprint nor base64url"))?
            .len()
    };
    match len {
        20 | 32 => Ok(()),
        n => Err(format!("`{t}` has {n} bytes; a SHA-1 thumbprint has 20 (SHA-256: 32)")),
    }
}

/// The prefix must be a header-name prefix and must not be a prefix of a header the sidecar relies on, since every
/// inbound header starting with it is removed.
fn check_header_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty: every inbound header would be removed".into());
    }
    if http::HeaderName::from_bytes(p.as_bytes()).is_err() {
        return Err(format!("`{p}` is not a header name prefix"));
    }
    let lower = p.to_ascii_lowercase();
    for h in ["authorization", "cookie", "host", "content-type", "content-length", "transfer-encoding", "x-forwarded-for"] {
        if h.starts_with(&lower) {
            return Err(format!("`{p}` would strip the `{h}` header of every request; use e.g. \"X-Auth-\""));
        }
    }
    Ok(())
}

fn check_cookie_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if ok { Ok(()) } else { Err(format!("`{n}` is not a cookie name (letters, digits, `-`, `_`)")) }
}

fn check_domain(d: &str) -> Result<(), String> {
    let ok = !d.is_empty()
        && d.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok { Ok(()) } else { Err(format!("`{d}` is not a domain (no scheme, port or path: e.g. \"example.com\")")) }
}

/// `api.example.com`, `*.example.com`, `*`, an IP literal or `[v6]`; lower-case, no port.
fn check_host_name(n: &str) -> Result<(), String> {
    if n == "*" {
        return Ok(());
    }
    if n.contains("://") {
        return Err(format!("`{n}` is a URL; write the host name only, e.g. \"api.example.com\""));
    }
    if n.starts_with('[') {
        let inner = n.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        return match inner.map(std::net::Ipv6Addr::from_str) {
            Some(Ok(_)) => Ok(()),
            _ => Err(format!("`{n}` is not an IPv6 literal (and a host name has no port)")),
        };
    }
    if n.contains(':') {
        return Err(format!("`{n}`: a host name has no port (the Host header's port is ignored)"));
    }
    let labels = n.strip_prefix("*.").unwrap_or(n);
    let ok = !labels.is_empty()
        && labels.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if ok { Ok(()) } else { Err(format!("`{n}` is not a host name (e.g. \"api.example.com\", \"*.example.com\" or \"*\")")) }
}

/// An origin for CSRF and CORS checks, normalized to `scheme://host[:port]` as browsers send it.
fn parse_origin(o: &str) -> Result<String, String> {
    let t = o.trim();
    if t == "*" {
        return Err("`*` is not allowed: list the origins (a wildcard would let any site use the session)".into());
    }
    let url = url::Url::parse(t).map_err(|_| format!("`{o}` is not an origin (e.g. \"https://app.example.com\")"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{o}` is not an http(s) origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("`{o}`: an origin is scheme://host[:port], without path"));
    }
    Ok(url.origin().ascii_serialization())
}

fn parse_external_url(u: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(u.trim()).map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("`{u}` is not an http(s) URL"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("`{u}`: write the base URL only, e.g. \"https://app.example.com\""));
    }
    Ok(url)
}

/// Checked without ever echoing the URL: it usually holds the Redis password.
fn check_redis_url(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u.trim()).map_err(|_| "is not a URL (e.g. \"rediss://:password@host:6379\")".to_string())?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!("scheme `{}` is not redis:// or rediss://", url.scheme()));
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
