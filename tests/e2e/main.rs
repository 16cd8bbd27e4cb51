//! The end-to-end suite: one stack (demo origin, local issuer, gateway in `wrangler dev`) shared
//! by every test, stopped by PID when the run ends.

// Test code: a failed expectation panics, and that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::print_stderr
)]

mod abuse;
mod auth;
mod corpus;
mod dast;
mod deploy;
mod forwarding;
mod limits;
mod machines;
mod mtls;
mod regressions;
mod requests;
mod rotation;
mod secrets;
mod shape;

use std::sync::Arc;

use gateway_e2e::Stack;
use libtest_mimic::{Arguments, Trial};

/// A test case: a name and a function of the running stack.
pub(crate) type Case = (&'static str, fn(&Stack));

fn main() {
    let args = Arguments::from_args();
    let cases: Vec<Case> = [
        forwarding::CASES,
        requests::CASES,
        auth::CASES,
        corpus::CASES,
        machines::CASES,
        limits::CASES,
        abuse::CASES,
        mtls::CASES,
        rotation::CASES,
        shape::CASES,
        secrets::CASES,
        regressions::CASES,
        deploy::CASES,
        dast::CASES,
        dast::SCAN_CASES,
    ]
    .concat();
    let wanted = |name: &str| {
        args.filter.as_deref().is_none_or(|f| {
            if args.exact {
                name == f
            } else {
                name.contains(f)
            }
        })
    };
    let stack = if cases.iter().any(|(name, _)| wanted(name)) && !args.list {
        match Stack::start("e2e") {
            Ok(stack) => Some(Arc::new(stack)),
            Err(e) => {
                eprintln!("e2e: could not start the stack: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    let trials = cases
        .into_iter()
        .map(|(name, case)| {
            let stack = stack.clone();
            // Scanner runs that need tools `make test` does not install (wapiti, a Debian
            // package) are ignored there; `make scan` runs them with --include-ignored.
            let ignored = dast::SCAN_ONLY.contains(&name);
            Trial::test(name, move || {
                let stack = stack.ok_or("the stack is not running")?;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&stack))).map_err(
                    |e| {
                        e.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "test panicked".to_owned())
                            .into()
                    },
                )
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // Stop the stack before exiting (process::exit runs no destructors).
    drop(stack);
    // Every token and secret of the run is a canary: none may appear in the gateway's or the
    // origin's logs or in any gateway response.
    match gateway_e2e::leaks::audit() {
        Ok(report) => eprintln!("{report}"),
        Err(leaks) => {
            for (place, canary) in &leaks {
                eprintln!("LEAK: {canary}... found in {place}");
            }
            eprintln!("leak audit failed: {} leaks", leaks.len());
            std::process::exit(101);
        }
    }
    conclusion.exit();
}
