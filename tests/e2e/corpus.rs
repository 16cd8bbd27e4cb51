//! The committed attack corpus, end to end: every case through the real runtime, so the
//! WebCrypto path is what judges the signatures. The same cases run natively in
//! `core/tests/attack_corpus.rs`.

use gateway_e2e::corpus::{self, Carried};
use gateway_e2e::{Stack, http};

use crate::Case;

pub(crate) const CASES: &[Case] = &[(
    "corpus::every_case_gets_its_expected_answer",
    every_case_gets_its_expected_answer,
)];

fn send(stack: &Stack, carried: &Carried) -> http::Response {
    let mut url = format!("{}/api/transactions", stack.gateway);
    if let Some(query) = &carried.query {
        url = format!("{url}?{query}");
    }
    let mut headers: Vec<(&str, &str)> = carried
        .authorization
        .iter()
        .map(|v| ("Authorization", v.as_str()))
        .collect();
    if let Some(cookie) = &carried.cookie {
        headers.push(("Cookie", cookie));
    }
    http::get(&url, &headers).unwrap()
}

fn every_case_gets_its_expected_answer(stack: &Stack) {
    let signer = stack.signer();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    corpus::check_all(&signer, now, |carried| {
        let resp = send(stack, carried);
        let code = (resp.status != 200)
            .then(|| resp.json()["error"].as_str().map(str::to_owned))
            .flatten();
        (resp.status, code)
    });
}
