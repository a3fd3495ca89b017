//! Reading the static root into memory, once, at start.
//!
//! Everything that can go wrong with the files (unreadable, too big, too many) goes wrong here, before the sidecar
//! listens, with the file named: an operator learns at deploy time, not from a 500 at the first request.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bounds on what [`Assets::load`](super::Assets::load) holds in memory.
///
/// Files over `max_file_bytes` are refused at load (not served from disk): a Fargate task's memory is sized for the
/// SPA, and a stray video in the build directory should fail the deploy loudly rather than be read on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest single file, precompressed siblings included. Default 32 MiB.
    pub max_file_bytes: u64,
    /// Sum of every file held. Default 256 MiB.
    pub max_total_bytes: u64,
    /// Number of files (siblings included). Default 20 000.
    pub max_files: usize,
    /// Directory nesting below the root. Default 32.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file_bytes: 32 << 20, max_total_bytes: 256 << 20, max_files: 20_000, max_depth: 32 }
    }
}

impl Limits {
    pub fn new(max_file_bytes: u64, max_total_bytes: u64) -> Self {
        Limits { max_file_bytes, max_total_bytes, ..Limits::default() }
    }
}

/// Why the static root could not be loaded. Each names the path the operator must look at.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("static_root {}: cannot open it: {source}", root.display())]
    Root { root: PathBuf, source: io::Error },
    #[error("static_root {} is not a directory", root.display())]
    NotADirectory { root: PathBuf },
    #[error("static file {}: cannot read it: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("static file {} is {size} bytes, over the per-file limit of {limit} bytes; remove it from the build or serve it from elsewhere", path.display())]
    FileTooLarge { path: PathBuf, size: u64, limit: u64 },
    #[error("static files under {} exceed the total limit of {limit} bytes (reached at {})", root.display(), at.display())]
    TotalTooLarge { root: PathBuf, limit: u64, at: PathBuf },
    #[error("static_root {} holds more than {limit} files", root.display())]
    TooManyFiles { root: PathBuf, limit: usize },
    #[error("static directory {} is nested deeper than {limit} levels below the root", path.display())]
    TooDeep { path: PathBuf, limit: usize },
}

/// One regular file found under the root, not yet read.
#[derive(Debug)]
pub(super) struct Found {
    /// The file as read (the canonical target when reached through a symlink).
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
}

/// The decoded URL path (`/assets/app.js`) of every regular file under the canonical root, and the canonical root.
///
/// Skipped, with a log line: symlinks whose target leaves the root (or dangles), names that are not UTF-8, dot-files
/// and dot-directories other than `.well-known` (`.git`, `.env`, editor droppings are never public by accident),
/// and anything that is neither a file nor a directory.
pub(super) fn walk(root: &Path, limits: &Limits) -> Result<(PathBuf, BTreeMap<String, Found>), AssetsError> {
    let canonical = fs::canonicalize(root).map_err(|source| AssetsError::Root { root: root.to_path_buf(), source })?;
    if !canonical.is_dir() {
        return Err(AssetsError::NotADirectory { root: root.to_path_buf() });
    }
    let mut found = BTreeMap::new();
    let mut ancestors = vec![canonical.clone()];
    visit(&canonical, &canonical, "", limits, &mut ancestors, &mut found)?;
    Ok((canonical, found))
}

fn visit(
    root: &Path,
    dir: &Path,
    prefix: &str,
    limits: &Limits,
    ancestors: &mut Vec<PathBuf>,
    found: &mut BTreeMap<String, Found>,
) -> Result<(), AssetsError> {
    let read = |source| AssetsError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> = fs::read_dir(dir).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %path.display(), "static file skipped: its name is not UTF-8");
            continue;
        };
        if name.starts_with('.') && name != ".well-known" {
            tracing::debug!(path = %path.display(), "static file skipped: hidden");
            continue;
        }
        let file_type = entry.file_type().map_err(|source| AssetsError::Read { path: path.clone(), source })?;
        let (real, meta) = if file_type.is_symlink() {
            let target = match fs::canonicalize(&path) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "static file skipped: its symlink does not resolve");
                    continue;
                }
            };
            if !target.starts_with(root) {
                tracing::warn!(
                    path = %path.display(),
                    target = %target.display(),
                    "static file skipped: its symlink points outside static_root"
                );
                continue;
            }
            let meta = fs::metadata(&target).map_err(|source| AssetsError::Read { path: path.clone(), source })?;
            (target, meta)
        } else {
            let meta = entry.metadata().map_err(|source| AssetsError::Read { path: path.clone(), source })?;
            (path.clone(), meta)
        };
        let key = format!("{prefix}/{name}");
        if meta.is_dir() {
            if ancestors.iter().any(|a| a == &real) {
                tracing::warn!(path = %path.display(), "static directory skipped: its symlink loops back to a parent");
                continue;
            }
            if ancestors.len() > limits.max_depth {
                return Err(AssetsError::TooDeep { path, limit: limits.max_depth });
            }
            ancestors.push(real.clone());
            visit(root, &real, &key, limits, ancestors, found)?;
            ancestors.pop();
        } else if meta.is_file() {
            if found.len() >= limits.max_files {
                return Err(AssetsError::TooManyFiles { root: root.to_path_buf(), limit: limits.max_files });
            }
            if meta.len() > limits.max_file_bytes {
                return Err(AssetsError::FileTooLarge { path, size: meta.len(), limit: limits.max_file_bytes });
            }
            // Whole seconds: HTTP dates have no finer resolution, and If-Modified-Since compares against them.
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()));
            found.insert(key, Found { path: real, modified });
        } else {
            tracing::warn!(path = %path.display(), "static file skipped: not a regular file");
        }
    }
    Ok(())
}

/// Reads one file, checking the per-file bound again on what was actually read (the file may have grown).
pub(super) fn read(path: &Path, limits: &Limits) -> Result<Vec<u8>, AssetsError> {
    let bytes = fs::read(path).map_err(|source| AssetsError::Read { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(AssetsError::FileTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    Ok(bytes)
}
