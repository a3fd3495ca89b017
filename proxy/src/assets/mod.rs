//! The SPA's static files: loaded once at start, held in memory, served from a map.
//!
//! # Why in memory
//! A single-page app's build is a few megabytes. Holding each file as [`Bytes`] makes a response a reference-count
//! clone (no read, no copy per request), lets the ETag be a hash of the content computed once, and keeps the request
//! path free of file-system calls. [`Limits`] bound it: a file over the per-file bound is refused at load with its
//! name, never half-served.
//!
//! # Why nothing can escape the root
//! [`Assets::serve`] never touches the file system: it looks the path up in a map whose keys are the files found at
//! load. A path that is not a key does not exist, so `..`, encoded dots, and directory listings have nothing to
//! reach. Symlinks are resolved at load and kept only when their target lies inside the canonical root, so a link to
//! `/etc/passwd` is skipped (with a warning), and hidden files (`.git/`, `.env`) are never loaded.
//!
//! # What a request gets
//! - GET and HEAD only; anything else is 405 with `Allow: GET, HEAD`.
//! - `/dir/` (or `/dir` when it is a directory) serves `/dir/index.html` when it exists.
//! - SPA fallback: a path that is no file and whose last segment has no `.` (a client-side route such as
//!   `/orders/42`) gets the root `index.html` with 200; a missing path with an extension (`/missing.js`) is a JSON
//!   404, so a broken asset link fails visibly instead of parsing HTML as JavaScript.
//! - `Accept-Encoding` picks a precompressed sibling the build wrote (`app.js.br`, `app.js.gz` next to `app.js`),
//!   which is a variant of `app.js`, not a path of its own. See [`encoding`].
//! - Strong ETag (a SHA-256 prefix of each variant's bytes) and Last-Modified (the file's mtime); `If-None-Match`
//!   and `If-Modified-Since` answer 304. See [`conditional`].
//! - `Cache-Control`: a year and `immutable` for fingerprinted files, `no-cache` for the rest. See [`caching`].

mod caching;
mod conditional;
mod encoding;
mod load;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use crate::flow::LocalResponse;
use encoding::Coding;

pub use load::{AssetsError, Limits};

/// The label every static answer carries in logs and metrics.
const DECISION: &str = "static";

/// Every file under one static root, ready to serve. Immutable after [`Assets::load`]; share it behind an `Arc`.
pub struct Assets {
    root: PathBuf,
    /// Decoded URL path (`/assets/app.js`) → file.
    files: HashMap<String, Asset>,
    total_bytes: u64,
}

struct Asset {
    content_type: String,
    cache_control: &'static str,
    last_modified: Option<SystemTime>,
    /// `last_modified` as an HTTP date, formatted once.
    last_modified_header: Option<String>,
    identity: Variant,
    gzip: Option<Variant>,
    br: Option<Variant>,
}

impl Asset {
    fn variant(&self, coding: Coding) -> &Variant {
        match coding {
            Coding::Identity => &self.identity,
            Coding::Gzip => self.gzip.as_ref().unwrap_or(&self.identity),
            Coding::Brotli => self.br.as_ref().unwrap_or(&self.identity),
        }
    }

    fn has_variants(&self) -> bool {
        self.gzip.is_some() || self.br.is_some()
    }
}

/// One representation of a file. Each has its own strong ETag, since a strong validator promises byte equality
/// (RFC 9110 §8.8.1) and the gzip bytes are not the brotli bytes.
struct Variant {
    bytes: Bytes,
    etag: String,
}

impl Variant {
    fn new(bytes: Vec<u8>) -> Self {
        let digest = Sha256::digest(&bytes);
        let mut etag = String::with_capacity(34);
        etag.push('"');
        for b in &digest[..16] {
            etag.push_str(&format!("{b:02x}"));
        }
        etag.push('"');
        Variant { bytes: Bytes::from(bytes), etag }
    }
}

// === impl Assets ===

/// A summary: the derived form would print every byte of the build.
impl std::fmt::Debug for Assets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assets")
            .field("root", &self.root)
            .field("files", &self.files.len())
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

impl Assets {
    /// Reads every file under `root` into memory, within `limits`. See [`AssetsError`] for what stops the start.
    ///
    /// `x.br` and `x.gz` next to an `x` become `x`'s precompressed variants; without an `x` they are plain files.
    pub fn load(root: &Path, limits: Limits) -> Result<Assets, AssetsError> {
        let (canonical, found) = load::walk(root, &limits)?;
        let mut total: u64 = 0;
        let mut read = |path: &Path| -> Result<Vec<u8>, AssetsError> {
            let bytes = load::read(path, &limits)?;
            total += bytes.len() as u64;
            if total > limits.max_total_bytes {
                return Err(AssetsError::TotalTooLarge {
                    root: root.to_path_buf(),
                    limit: limits.max_total_bytes,
                    at: path.to_path_buf(),
                });
            }
            Ok(bytes)
        };

        let sibling = |key: &str, suffix: &str| key.strip_suffix(suffix).filter(|base| found.contains_key(*base)).is_some();
        let mut files = HashMap::with_capacity(found.len());
        for (key, file) in &found {
            if sibling(key, ".br") || sibling(key, ".gz") {
                continue;
            }
            let identity = Variant::new(read(&file.path)?);
            let mut precompressed = |suffix: &str| -> Result<Option<Variant>, AssetsError> {
                match found.get(&format!("{key}{suffix}")) {
                    Some(f) => Ok(Some(Variant::new(read(&f.path)?))),
                    None => Ok(None),
                }
            };
            let gzip = precompressed(".gz")?;
            let br = precompressed(".br")?;
            let name = key.rsplit('/').next().unwrap_or(key);
            files.insert(
                key.clone(),
                Asset {
                    content_type: caching::content_type(name),
                    cache_control: caching::cache_control(key),
                    last_modified: file.modified,
                    last_modified_header: file.modified.map(httpdate::fmt_http_date),
                    identity,
                    gzip,
                    br,
                },
            );
        }
        if !files.contains_key("/index.html") {
            tracing::warn!(root = %canonical.display(), "static_root has no index.html: the SPA fallback answers 404");
        }
        tracing::debug!(root = %canonical.display(), files = files.len(), bytes = total, "static files loaded");
        Ok(Assets { root: canonical, files, total_bytes: total })
    }

    /// Number of servable paths (precompressed siblings not counted).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes held in memory, precompressed siblings included.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The canonical root the files were read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when `normalized_path` names a file (not a fallback).
    pub fn contains(&self, normalized_path: &str) -> bool {
        decode(normalized_path).is_some_and(|p| self.files.contains_key(&p))
    }

    /// Answers a request for `normalized_path` (the output of `policy::path::normalize`, without the query).
    ///
    /// Never fails and never touches the disk: every answer is built from the map. `decision` is always `static`.
    pub fn serve(&self, method: &Method, normalized_path: &str, headers: &HeaderMap) -> LocalResponse {
        if method != Method::GET && method != Method::HEAD {
            let mut r = LocalResponse::json_error(
                405,
                DECISION,
                "method_not_allowed",
                format!("static files answer only GET and HEAD, not {method}"),
            );
            r.headers.push(("Allow".into(), "GET, HEAD".into()));
            return r;
        }
        let Some((key, asset, fallback)) = self.resolve(normalized_path) else {
            let mut r = LocalResponse::not_found(format!("no file at {normalized_path}"));
            r.decision = DECISION;
            return r;
        };

        let coding = encoding::choose(headers, asset.gzip.is_some(), asset.br.is_some());
        let variant = asset.variant(coding);
        let mut out: Vec<(String, String)> = Vec::with_capacity(7);
        out.push(("ETag".into(), variant.etag.clone()));
        if let Some(lm) = &asset.last_modified_header {
            out.push(("Last-Modified".into(), lm.clone()));
        }
        out.push(("Cache-Control".into(), asset.cache_control.into()));
        if asset.has_variants() {
            out.push(("Vary".into(), "Accept-Encoding".into()));
        }
        let reason = if fallback { format!("spa fallback to {key}") } else { key.to_string() };

        if conditional::not_modified(headers, &variant.etag, asset.last_modified) {
            return LocalResponse { status: 304, headers: out, body: Bytes::new(), decision: DECISION, reason };
        }
        out.push(("Content-Type".into(), asset.content_type.clone()));
        if let Some(ce) = coding.header_value() {
            out.push(("Content-Encoding".into(), ce.into()));
        }
        LocalResponse { status: 200, headers: out, body: variant.bytes.clone(), decision: DECISION, reason }
    }

    /// The file for a path: itself, its directory's `index.html`, or the SPA fallback. The flag says "fallback".
    fn resolve(&self, normalized_path: &str) -> Option<(&str, &Asset, bool)> {
        let path = decode(normalized_path)?;
        if !is_clean(&path) {
            return None;
        }
        let get = |k: &str| self.files.get_key_value(k).map(|(k, a)| (k.as_str(), a));
        let direct = if path.ends_with('/') {
            get(&format!("{path}index.html"))
        } else {
            get(&path).or_else(|| get(&format!("{path}/index.html")))
        };
        if let Some((k, a)) = direct {
            return Some((k, a, false));
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        if last.contains('.') {
            return None;
        }
        get("/index.html").map(|(k, a)| (k, a, true))
    }
}

/// The canonical path's percent-escapes decoded, as the map's keys are spelled. `None` when it is not UTF-8.
fn decode(normalized_path: &str) -> Option<String> {
    percent_encoding::percent_decode_str(normalized_path).decode_utf8().ok().map(|c| c.into_owned())
}

/// A decoded path as `normalize` leaves it: absolute, no `.`/`..`/empty segment inside, no backslash or control
/// character. Anything else means the caller skipped normalization; it gets a 404, not a fallback page.
fn is_clean(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else { return false };
    if path.contains('\\') || path.chars().any(char::is_control) {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty() && rest.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

#[cfg(test)]
mod tests;
