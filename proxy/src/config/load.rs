//! Reading and validating a config file (owned by the config work; stub until then).
use super::Config;
use std::path::Path;

/// What is wrong with a config file, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    /// `file:line: key: what is wrong`
    #[error("{file}:{line}: {key}: {message}")]
    Invalid { file: String, line: usize, key: String, message: String },
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { file: path.display().to_string(), source })?;
    load_str(&text, path)
}

pub fn load_str(_text: &str, path: &Path) -> Result<Config, ConfigError> {
    Err(ConfigError::Invalid { file: path.display().to_string(), line: 1, key: String::new(), message: "not yet implemented".into() })
}
