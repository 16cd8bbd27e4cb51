//! A header block turned into another with the fewest `Headers` operations.
//!
//! The Worker hands the origin a copy of the client's headers and the client a copy of the
//! origin's, each changed in place, instead of rebuilding every header: most of them pass
//! through unchanged, and a copy the runtime makes natively costs less than sending each one
//! back across the wasm boundary (BENCHMARKS.md, "Where the time goes"). What the gateway wants
//! in the block is still decided whole, here and in `forward`; this module only works out the
//! edits that turn the block the runtime holds (`base`) into the wanted one.
//!
//! Both blocks are `(name, value)` lists as `Headers` iterates them: a name may appear more than
//! once (`Set-Cookie`), names compare in any case.

/// One `Headers` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// `headers.delete(name)`: every entry of `name` removed.
    Delete(&'a str),
    /// `headers.set(name, value)`: every entry of `name` replaced by this one.
    Set(&'a str, &'a str),
    /// `headers.append(name, value)`: one more entry of `name`.
    Append(&'a str, &'a str),
}

/// One `(name, value)` entry of a block, however the caller holds it.
pub trait Entry {
    /// The entry's name.
    fn name(&self) -> &str;
    /// The entry's value.
    fn value(&self) -> &str;
}

impl<N: AsRef<str>, V: AsRef<str>> Entry for (N, V) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }
    fn value(&self) -> &str {
        self.1.as_ref()
    }
}

/// The values of `name` (any case) in `block`, in order.
fn values_of<'a, E: Entry>(block: &'a [E], name: &'a str) -> impl Iterator<Item = &'a str> {
    block
        .iter()
        .filter(move |e| e.name().eq_ignore_ascii_case(name))
        .map(Entry::value)
}

/// Names in any case, ordered as their lower-case forms.
fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// The edits that turn `base` into `wanted`: a `Delete` for each name `wanted` lacks, and for
/// each name whose entries differ, a `Set` of the first wanted value followed by an `Append` of
/// each further one. Names whose entries are already the wanted ones (same values, same order)
/// are left alone. Deletes come first, in the order their names first appear in `base`; then the
/// sets, in the order their names first appear in `wanted`.
///
/// Both blocks' entries are sorted by name once and compared name by name (O(n log n): a block
/// is compared on every forwarded request, twice).
pub fn header_edits<'a, B: Entry, W: Entry>(base: &'a [B], wanted: &'a [W]) -> Vec<HeaderEdit<'a>> {
    // Every entry: its name, whether it is in `wanted`, its position in its block.
    let mut all: Vec<(&'a str, bool, usize)> = base
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name(), false, i))
        .chain(wanted.iter().enumerate().map(|(i, e)| (e.name(), true, i)))
        .collect();
    all.sort_unstable_by(|a, b| {
        cmp_ignore_case(a.0, b.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    // (position of the name's first entry, name as written there)
    let mut deletes: Vec<(usize, &'a str)> = Vec::new();
    let mut sets: Vec<(usize, &'a str)> = Vec::new();
    for group in all.chunk_by(|a, b| a.0.eq_ignore_ascii_case(b.0)) {
        let (in_base, in_wanted) = group.split_at(group.partition_point(|e| !e.1));
        match (in_base.first(), in_wanted.first()) {
            (Some(&(name, _, at)), None) => deletes.push((at, name)),
            (_, Some(&(name, _, at))) => {
                let same = in_base.len() == in_wanted.len()
                    && in_base.iter().zip(in_wanted).all(|(b, w)| {
                        base.get(b.2).map(Entry::value) == wanted.get(w.2).map(Entry::value)
                    });
                if !same {
                    sets.push((at, name));
                }
            }
            (None, None) => {}
        }
    }
    deletes.sort_unstable();
    sets.sort_unstable();
    let mut edits: Vec<HeaderEdit<'a>> = deletes
        .into_iter()
        .map(|(_, name)| HeaderEdit::Delete(name))
        .collect();
    for (_, name) in sets {
        let mut values = values_of(wanted, name);
        if let Some(first) = values.next() {
            edits.push(HeaderEdit::Set(name, first));
        }
        edits.extend(values.map(|v| HeaderEdit::Append(name, v)));
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// `Headers` as the runtime keeps it: entries in order, names in any case.
    fn apply(base: &[(String, String)], edits: &[HeaderEdit<'_>]) -> Vec<(String, String)> {
        let mut out = base.to_vec();
        for edit in edits {
            match *edit {
                HeaderEdit::Delete(name) => out.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
                HeaderEdit::Set(name, value) => {
                    out.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    out.push((name.to_owned(), value.to_owned()));
                }
                HeaderEdit::Append(name, value) => out.push((name.to_owned(), value.to_owned())),
            }
        }
        out
    }

    /// Per name (lower case, sorted), the values in order: what `Headers` iteration shows.
    fn seen(block: &[(String, String)]) -> Vec<(String, Vec<String>)> {
        let mut names: Vec<String> = block.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                let values = values_of(block, &n).map(str::to_owned).collect();
                (n, values)
            })
            .collect()
    }

    /// The edits worked out the plain way, name by name over both whole blocks (O(n^2)): what
    /// the sorted version must give, in the same order.
    fn naive_edits<'a>(
        base: &'a [(String, String)],
        wanted: &'a [(String, String)],
    ) -> Vec<HeaderEdit<'a>> {
        let first_of = |block: &[(String, String)], i: usize, name: &str| {
            !block
                .iter()
                .take(i)
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let mut edits = Vec::new();
        for (i, (name, _)) in base.iter().enumerate() {
            if first_of(base, i, name) && !wanted.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                edits.push(HeaderEdit::Delete(name.as_str()));
            }
        }
        for (i, (name, _)) in wanted.iter().enumerate() {
            if !first_of(wanted, i, name) || values_of(wanted, name).eq(values_of(base, name)) {
                continue;
            }
            let mut values = values_of(wanted, name);
            if let Some(first) = values.next() {
                edits.push(HeaderEdit::Set(name.as_str(), first));
            }
            edits.extend(values.map(|v| HeaderEdit::Append(name.as_str(), v)));
        }
        edits
    }

    fn check(base: &[(&str, &str)], wanted: &[(&str, &str)], expected: &[HeaderEdit<'_>]) {
        let (base, wanted) = (block(base), block(wanted));
        let edits = header_edits(&base, &wanted);
        assert_eq!(edits, expected);
        assert_eq!(seen(&apply(&base, &edits)), seen(&wanted));
    }

    #[test]
    fn unchanged_blocks_need_no_edit() {
        let b = [("content-type", "application/json"), ("accept", "*/*")];
        check(&b, &b, &[]);
        check(&[], &[], &[]);
    }

    #[test]
    fn edits_name_only_what_changed() {
        use HeaderEdit::{Append, Delete, Set};
        check(
            &[
                ("server", "demo"),
                ("content-type", "application/json"),
                ("x-request-id", "theirs"),
            ],
            &[
                ("content-type", "application/json"),
                ("x-frame-options", "DENY"),
                ("x-request-id", "ours"),
            ],
            &[
                Delete("server"),
                Set("x-frame-options", "DENY"),
                Set("x-request-id", "ours"),
            ],
        );
        // A name in another case is the same name; a repeated one is set, then appended.
        check(
            &[("Link", "<a>"), ("set-cookie", "a=1")],
            &[
                ("link", "<a>"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ],
            &[Set("set-cookie", "a=1"), Append("set-cookie", "b=2")],
        );
        // Same values in another order are not the same block.
        check(
            &[("set-cookie", "a=1"), ("set-cookie", "b=2")],
            &[("set-cookie", "b=2"), ("set-cookie", "a=1")],
            &[Set("set-cookie", "b=2"), Append("set-cookie", "a=1")],
        );
        // Every entry of a repeated name goes with one delete.
        check(
            &[("set-cookie", "a=1"), ("Set-Cookie", "b=2")],
            &[],
            &[Delete("set-cookie")],
        );
    }

    fn arb_block() -> impl Strategy<Value = Vec<(String, String)>> {
        let name = prop::sample::select(vec!["a", "A", "b", "set-cookie", "Set-Cookie", "c"]);
        let value = prop::sample::select(vec!["1", "2", "x y"]);
        prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        })
    }

    proptest! {
        /// Applying the edits to `base` gives what `Headers` would show for `wanted`, and a name
        /// that is already right is never touched.
        #[test]
        fn edits_turn_base_into_wanted(base in arb_block(), wanted in arb_block()) {
            let edits = header_edits(&base, &wanted);
            prop_assert_eq!(&edits, &naive_edits(&base, &wanted));
            prop_assert_eq!(seen(&apply(&base, &edits)), seen(&wanted));
            for edit in &edits {
                let name = match *edit {
                    HeaderEdit::Delete(n) | HeaderEdit::Set(n, _) | HeaderEdit::Append(n, _) => n,
                };
                prop_assert!(!values_of(&base, name).eq(values_of(&wanted, name)));
            }
            prop_assert!(header_edits(&wanted, &wanted).is_empty());
        }
    }
}
