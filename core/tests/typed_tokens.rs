//! What the types refuse to code outside `gateway-core`: each case in `compile-fail/` must fail to
//! compile, with the error recorded beside it (`<case>.stderr`; after a deliberate change of the
//! types or of the pinned toolchain, regenerate with `TRYBUILD=overwrite cargo test -p
//! gateway-core --test typed_tokens` and review the diff).
//!
//! - `verified_claims_literal`: a caller cannot be written down (private fields);
//! - `verified_claims_deserialize`: nor read from JSON (no `Deserialize`);
//! - `signature_checked_literal`: a checked token cannot be written down either;
//! - `signature_check_without_outcome`: the only way to one is the verifier's answer;
//! - `untrusted_token_to_claims`: claims are validated only on a checked token.

#[test]
fn credentials_cannot_be_built_without_their_checks() {
    trybuild::TestCases::new().compile_fail("tests/compile-fail/*.rs");
}
