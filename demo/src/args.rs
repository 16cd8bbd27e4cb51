//! `--flag value` pairs, nothing more.

use std::collections::BTreeMap;

/// Parsed `--flag value` pairs.
#[derive(Debug)]
pub(crate) struct Args(BTreeMap<String, String>);

impl Args {
    pub(crate) fn parse(argv: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut map = BTreeMap::new();
        let mut argv = argv.peekable();
        while let Some(flag) = argv.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, got '{flag}'"))?;
            let value = argv
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            if map.insert(name.to_owned(), value).is_some() {
                return Err(format!("--{name} given twice"));
            }
        }
        Ok(Args(map))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn required(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("--{name} is required"))
    }

    pub(crate) fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: '{v}' is not a whole number")),
        }
    }
}
