//! `gateway-demo`: the peers the gateway runs against on a developer's machine and in the test
//! suite, all on loopback.
//!
//! ```text
//! gateway-demo origin --listen 127.0.0.1:9100
//! gateway-demo issuer --listen 127.0.0.1:9101 --keys .local/issuer --issuer http://127.0.0.1:9101
//! gateway-demo token  --keys .local/issuer --issuer http://127.0.0.1:9101 --audience https://api.example.com \
//!                     --org acme --tier pro --scopes "transactions:read" [--sub S] [--expires-in 900] [--claims '{"k":"v"}']
//! ```
//! Servers print `listening on http://<addr>` as their first line (so `--listen 127.0.0.1:0`
//! can be used and the port read back) and serve until killed.

mod args;
mod issuer;
mod origin;
mod server;
mod signature;

use std::process::ExitCode;

use args::Args;

const USAGE: &str = "usage: gateway-demo <origin|issuer|token|keys|rotate> [--flag value ...]
  origin --listen ADDR [--threads N] [--signing-keys FILE]
         (with a keyset file, every request must carry a valid gateway signature, else 401)
  issuer --listen ADDR --keys DIR [--issuer URL] [--jwks-max-age SECONDS]
         (default issuer: http://<bound address>; JWKS Cache-Control max-age default 300)
  rotate --keys DIR [--keep-previous true|false] [--kid ID]
         (new signing key; the previous ones stay published unless --keep-previous false)
  token  --keys DIR --issuer URL --audience AUD --org ORG [--tier TIER] [--scopes \"a b\"]
         [--sub SUB] [--expires-in SECONDS] [--claims JSON]
  keys   --keys DIR   (create the signing keys if missing; print the key id)";

fn run() -> Result<(), String> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().ok_or_else(|| USAGE.to_owned())?;
    let args = Args::parse(argv)?;
    match command.as_str() {
        "origin" => {
            let threads = args.number("threads", 4)?;
            let verifier = args
                .get("signing-keys")
                .map(signature::Verifier::load)
                .transpose()?;
            origin::serve(
                &args.required("listen")?,
                usize::try_from(threads).unwrap_or(4),
                verifier,
            )
        }
        "issuer" => issuer::serve(
            &args.required("listen")?,
            &args.required("keys")?,
            args.get("issuer"),
            args.number("jwks-max-age", 300)?,
        ),
        "rotate" => {
            let keep = match args.get("keep-previous").unwrap_or("true") {
                "true" => true,
                "false" => false,
                other => {
                    return Err(format!(
                        "--keep-previous takes true or false, not '{other}'"
                    ));
                }
            };
            let kid = issuer::KeySet::rotate(
                std::path::Path::new(&args.required("keys")?),
                keep,
                args.get("kid"),
            )?;
            println!("{kid}");
            Ok(())
        }
        "token" => {
            let token = issuer::mint_from_args(&args)?;
            println!("{token}");
            Ok(())
        }
        "keys" => {
            let keys =
                issuer::KeySet::load_or_create(std::path::Path::new(&args.required("keys")?))?;
            println!("{}", keys.active_kid());
            Ok(())
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("gateway-demo: {message}");
            }
            ExitCode::from(2)
        }
    }
}
