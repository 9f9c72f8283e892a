//! The key directory: one JSON file per key, created exclusively.
//!
//! A key file is written whole to a hidden temporary name, flushed, and then
//! hard-linked to its final name `key-NNNNNN.json`. `link(2)` fails if the
//! name exists, so of several writers racing for the same number exactly one
//! wins, and no reader ever sees a half-written key file.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::material::Pkcs8Der;
use super::{Algorithm, KeyError};

const FILE_PREFIX: &str = "key-";
const FILE_SUFFIX: &str = ".json";
const TEMP_PREFIX: &str = ".tmp-key-";
/// Far more than any key file needs (an RSA-2048 file is about 2 KiB).
const MAX_FILE_LEN: u64 = 64 * 1024;

/// The on-disk JSON document. Not `Debug`: it holds the private key.
#[derive(Serialize, Deserialize)]
struct KeyFileJson {
    kid: String,
    alg: Algorithm,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The PKCS#8 DER document, standard base64 (the file is already JSON,
    /// so no PEM armour).
    private_key_pkcs8: String,
}

/// What orders keys and decides publication; no secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyMeta {
    pub(super) kid: String,
    pub(super) algorithm: Algorithm,
    pub(super) created_at: OffsetDateTime,
}

/// A key file as read from disk, not yet parsed into key material.
pub(super) struct StoredKey {
    pub(super) path: PathBuf,
    pub(super) seq: u64,
    pub(super) meta: KeyMeta,
    pub(super) pkcs8: Pkcs8Der,
}

/// Creates the directory (mode 0700 on Unix) if it does not exist.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| KeyError::io("create key directory", dir, e))
}

/// The sequence number of a key file name, or `None` for any other file.
fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads every key file in `dir`. Files that vanish between listing and
/// reading (deleted by a concurrent rotation) are skipped; any other
/// unreadable or malformed key file is an error naming it.
pub(super) fn scan(dir: &Path) -> Result<Vec<StoredKey>, KeyError> {
    let entries = fs::read_dir(dir).map_err(|e| KeyError::io("list key directory", dir, e))?;
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| KeyError::io("list key directory", dir, e))?;
        let Some(seq) = entry.file_name().to_str().and_then(seq_of) else {
            continue;
        };
        let path = entry.path();
        if let Some(key) = read_key_file(&path, seq)? {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn read_key_file(path: &Path, seq: u64) -> Result<Option<StoredKey>, KeyError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyError::io("open key file", path, e)),
    };
    let metadata = file
        .metadata()
        .map_err(|e| KeyError::io("inspect key file", path, e))?;
    if metadata.len() > MAX_FILE_LEN {
        return Err(KeyError::corrupt(path, "file is too large"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "private key file is readable by group or others; it should be mode 0600"
            );
        }
    }
    let mut text = String::new();
    file.take(MAX_FILE_LEN)
        .read_to_string(&mut text)
        .map_err(|e| KeyError::io("read key file", path, e))?;
    // serde_json's messages can quote values from the input; report only the
    // position so a malformed file never leaks key material into logs.
    let json: KeyFileJson = serde_json::from_str(&text).map_err(|e| {
        KeyError::corrupt(
            path,
            format!(
                "expected a JSON object with kid, alg, created_at and private_key_pkcs8 (error at line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let der = STANDARD
        .decode(json.private_key_pkcs8.trim())
        .ok()
        .filter(|der| !der.is_empty())
        .ok_or_else(|| KeyError::corrupt(path, "private_key_pkcs8 is not base64 PKCS#8"))?;
    Ok(Some(StoredKey {
        path: path.to_owned(),
        seq,
        meta: KeyMeta {
            kid: json.kid,
            algorithm: json.alg,
            created_at: json.created_at,
        },
        pkcs8: Pkcs8Der(der),
    }))
}

/// Writes a new key file as `key-{seq}.json`, create-exclusive.
///
/// Returns `Ok(None)` when that name already exists: another writer won the
/// race, and the caller should re-scan.
pub(super) fn write_new(
    dir: &Path,
    seq: u64,
    meta: &KeyMeta,
    pkcs8: &Pkcs8Der,
) -> Result<Option<PathBuf>, KeyError> {
    let target = dir.join(format!("{FILE_PREFIX}{seq:06}{FILE_SUFFIX}"));
    let json = KeyFileJson {
        kid: meta.kid.clone(),
        alg: meta.algorithm,
        created_at: meta.created_at,
        private_key_pkcs8: STANDARD.encode(&pkcs8.0),
    };
    let mut text = serde_json::to_string_pretty(&json).map_err(|_| KeyError::Sign {
        reason: "key file could not be serialized",
    })?;
    text.push('\n');

    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}{FILE_SUFFIX}",
        std::process::id(),
        random_suffix(dir)?
    ));
    let write = || -> io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    if let Err(e) = write() {
        remove_temp(&temp);
        return Err(KeyError::io("write key file", &temp, e));
    }
    let linked = fs::hard_link(&temp, &target);
    remove_temp(&temp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(Some(target))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(KeyError::io("create key file", &target, e)),
    }
}

/// Deletes a key file. Returns false if it was already gone.
pub(super) fn remove(path: &Path) -> Result<bool, KeyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(KeyError::io("delete key file", path, e)),
    }
}

fn remove_temp(temp: &Path) {
    if let Err(e) = fs::remove_file(temp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %temp.display(), error = %e, "could not remove temporary key file");
    }
}

/// Makes the new directory entry durable; best effort, as not every
/// platform or file system can sync a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(path = %dir.display(), error = %e, "could not sync key directory");
    }
}

fn random_suffix(dir: &Path) -> Result<String, KeyError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            KeyError::io(
                "name a temporary file in",
                dir,
                io::Error::other("the system random generator failed"),
            )
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names_parse_only_when_exact() {
        assert_eq!(seq_of("key-000001.json"), Some(1));
        assert_eq!(seq_of("key-1234567.json"), Some(1_234_567));
        for other in [
            "key-.json",
            "key-01.json.bak",
            ".tmp-key-1-ab.json",
            "key-+1.json",
            "key-1a.json",
            "README",
        ] {
            assert_eq!(seq_of(other), None, "{other}");
        }
    }
}
