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
    let cases = corpus::cases();
    assert!(cases.len() >= 50, "the corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let resp = send(stack, &case.build(&signer, now));
        let code = if resp.status == 200 {
            None
        } else {
            resp.json()["error"].as_str().map(str::to_owned)
        };
        if (resp.status, code.clone()) != case.expect {
            failures.push(format!(
                "{}: got {} {:?}, expected {:?}",
                case.name, resp.status, code, case.expect
            ));
        }
        if resp.status >= 500 {
            failures.push(format!("{}: a 5xx for token input", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
