//! A header block as the runtime hands it to wasm: one string, `name\0value\0` per entry.
//!
//! Reading a request's or a response's headers costs the Worker one call and one string copy
//! (`src/headers.js` joins the entries as `Headers` iterates them); here they are split without
//! copying again: the block keeps the string and where each entry starts and ends. NUL can be in
//! no header name or value (the runtime refuses it), so it cannot be confused with the separator.
//!
//! Entries are as `Headers` iterates them: lower-case names, the values of a repeated name
//! combined (`Set-Cookie` apart, one entry each), in order. Lookups are case-insensitive.

/// The separator between names and values, and after each value.
pub const SEPARATOR: char = '\0';

/// A parsed header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    text: String,
    /// Per entry: where its name starts, where its value starts, where its value ends (byte
    /// offsets into `text`; the name ends one byte before the value starts).
    entries: Vec<[usize; 3]>,
}

impl HeaderBlock {
    /// Splits `text`. `None` unless it is whole entries, each a non-empty name and a value, each
    /// followed by [`SEPARATOR`] (the empty string is the empty block).
    pub fn parse(text: String) -> Option<HeaderBlock> {
        let mut entries = Vec::with_capacity(24);
        let mut at = 0;
        while at < text.len() {
            let rest = text.get(at..)?;
            let name_len = rest.find(SEPARATOR)?;
            let value_start = at.checked_add(name_len)?.checked_add(1)?;
            let value_len = text.get(value_start..)?.find(SEPARATOR)?;
            let value_end = value_start.checked_add(value_len)?;
            if name_len == 0 {
                return None;
            }
            entries.push([at, value_start, value_end]);
            at = value_end.checked_add(1)?;
        }
        Some(HeaderBlock { text, entries })
    }

    /// The block of these entries (names as given).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> HeaderBlock {
        let text: String = pairs
            .iter()
            .flat_map(|(n, v)| [*n, "\0", *v, "\0"])
            .collect();
        HeaderBlock::parse(text).unwrap_or_default()
    }

    fn entry(&self, [name, value, end]: [usize; 3]) -> (&str, &str) {
        (
            self.text
                .get(name..value.saturating_sub(1))
                .unwrap_or_default(),
            self.text.get(value..end).unwrap_or_default(),
        )
    }

    /// Every `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|&span| self.entry(span))
    }

    /// The entries as a list, borrowed (for `header_edit::header_edits`).
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().collect()
    }

    /// The value of `name` (any case), as `Headers.get` gives it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether `name` (any case) is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many entries the block has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the block has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The block's text for these pairs, as `src/headers.js` joins them.
    fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut text = String::new();
        for (name, value) in pairs {
            text.push_str(name);
            text.push(SEPARATOR);
            text.push_str(value);
            text.push(SEPARATOR);
        }
        text
    }

    #[test]
    fn splits_entries_in_order() {
        let block = HeaderBlock::parse(
            "host\0api.example\0set-cookie\0a=1\0set-cookie\0b=2\0x-empty\0\0".into(),
        )
        .unwrap();
        assert_eq!(
            block.pairs(),
            [
                ("host", "api.example"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-empty", "")
            ]
        );
        assert_eq!(block.get("Host"), Some("api.example"));
        assert_eq!(block.get("set-cookie"), Some("a=1"));
        assert_eq!(block.get("x-empty"), Some(""));
        assert!(block.has("X-EMPTY"));
        assert!(!block.has("authorization"));
        assert_eq!(block.len(), 4);
        assert!(HeaderBlock::parse(String::new()).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_whole_entries() {
        for text in [
            "host",
            "host\0",
            "host\0api",
            "host\0api\0accept",
            "\0value\0",
            "host\0api\0\0x\0",
        ] {
            assert_eq!(HeaderBlock::parse(text.into()), None, "{text:?}");
        }
    }

    #[test]
    fn values_keep_their_bytes() {
        let block = HeaderBlock::parse("x-name\0caf\u{e9} \"q\" \\ \0".into()).unwrap();
        assert_eq!(block.get("x-name"), Some("caf\u{e9} \"q\" \\ "));
    }

    proptest! {
        /// Whatever the entries (names non-empty, no separator anywhere), encoding then parsing
        /// gives them back, in order.
        #[test]
        fn encode_then_parse_is_identity(
            pairs in prop::collection::vec(("[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}", "[^\0]{0,20}"), 0..12)
        ) {
            let text = encode(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let block = HeaderBlock::parse(text).unwrap();
            let expected: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            prop_assert_eq!(block.pairs(), expected);
        }

        /// No input makes the parser panic, and what it accepts re-encodes to the same text.
        #[test]
        fn any_text_parses_or_is_refused(text in "[a-z\0é]{0,30}") {
            if let Some(block) = HeaderBlock::parse(text.clone()) {
                prop_assert_eq!(encode(block.iter()), text);
            }
        }
    }
}
