//! The `dev-vars` target: `.dev.vars` for `wrangler dev`, written whole and atomically (a
//! temporary file in the same folder, mode 0600, fsync, rename), or not at all.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::plan::Change;

/// One `NAME='value'` line. Values with a single quote or a line break cannot be written
/// literally in dotenv syntax and are refused (by name, never showing the value).
pub fn encode_line(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\'') || value.contains('\n') || value.contains('\r') {
        return Err(format!(
            "{name}: the value holds a quote or a line break and cannot be written to .dev.vars"
        ));
    }
    Ok(format!("{name}='{value}'\n"))
}

/// The file's text for these secrets.
pub fn encode(secrets: &[(String, String)]) -> Result<String, String> {
    let mut text =
        "# Written by gateway-secrets-sync from Vault. Do not edit: the next sync replaces it.\n"
            .to_owned();
    for (name, value) in secrets {
        text.push_str(&encode_line(name, value)?);
    }
    Ok(text)
}

/// Parses a `.dev.vars` (dotenv: `NAME=value`, `NAME='value'`, `NAME="value"`; `#` comments).
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (n.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// What writing `desired` over `existing` would change, per name.
pub fn changes(
    existing: &[(String, String)],
    desired: &[(String, String)],
) -> Vec<(String, Change)> {
    desired
        .iter()
        .map(|(name, value)| {
            let change = match existing.iter().find(|(n, _)| n == name) {
                None => Change::Added,
                Some((_, old)) if old == value => Change::Unchanged,
                Some(_) => Change::Changed,
            };
            (name.clone(), change)
        })
        .collect()
}

/// Replaces `path` with `text` atomically, mode 0600.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("replacing {}: {e}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn round_trip_and_changes() {
        let desired = vec![
            ("A".to_owned(), r#"{"k":"v"}"#.to_owned()),
            ("B".to_owned(), "plain".to_owned()),
        ];
        let text = encode(&desired).unwrap();
        assert_eq!(parse(&text), desired);
        let existing = vec![("A".to_owned(), "old".to_owned())];
        let c = changes(&existing, &desired);
        assert_eq!(c[0].1, Change::Changed);
        assert_eq!(c[1].1, Change::Added);
        assert!(
            changes(&desired, &desired)
                .iter()
                .all(|(_, c)| *c == Change::Unchanged)
        );
    }

    #[test]
    fn unsafe_values_are_refused_without_showing_them() {
        let err = encode_line("X", "it's-secret").unwrap_err();
        assert!(
            err.starts_with("X:") && !err.contains("it's-secret"),
            "{err}"
        );
        assert!(encode_line("X", "a\nb").is_err());
    }

    #[test]
    fn writes_atomically_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("devvars-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".dev.vars");
        std::fs::write(&path, "OLD='1'\n").unwrap();
        write_atomic(&path, "NEW='2'\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "NEW='2'\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
