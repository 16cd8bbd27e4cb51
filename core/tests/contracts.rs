//! The contracts written outside the code (docs/reference.md, .dev.vars.example, wrangler.toml)
//! agree with the names and rules in the code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use gateway_core::config::Policy;
use gateway_core::env::Environment;
use gateway_core::error::ErrorCode;
use gateway_core::names::{self, bindings, identity_headers, secrets, vars};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_reference_lists_every_shared_name_and_error_code() {
    let doc = read("docs/reference.md");
    let mut names: Vec<&str> = identity_headers::ALL.to_vec();
    names.extend([
        names::REQUEST_ID_HEADER,
        names::CLIENT_REQUEST_ID_HEADER,
        names::SIGNATURE_HEADER,
        names::RESERVED_PREFIX,
        names::HEALTH_PATH,
    ]);
    names.extend(secrets::ALL);
    names.extend(vars::ALL);
    names.extend([bindings::RATE_LIMITER, bindings::RATE_LIMITER_CLASS]);
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/reference.md does not list `{name}`"
        );
    }
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status());
        assert!(doc.contains(&row), "docs/reference.md lacks the row {row}");
    }
}

/// Every `.rs` file under `dir`, read.
fn sources(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
    out
}

/// Whether `module::[Type::]function` is a function of core's `module`.
fn core_function_exists(path: &str, core: &[(std::path::PathBuf, String)]) -> bool {
    let parts: Vec<&str> = path.split("::").collect();
    let (module, function) = (parts[0], *parts.last().unwrap());
    core.iter().any(|(file, text)| {
        let stem = file.file_stem().unwrap().to_string_lossy();
        let in_module = stem == module
            || file
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|d| d == module);
        in_module
            && (text.contains(&format!("fn {function}("))
                || text.contains(&format!("fn {function}<")))
    })
}

#[test]
fn every_error_code_names_the_core_function_that_decides_it_and_its_test() {
    let doc = read("docs/reference.md");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let core = sources(&root.join("src"));
    let mut everything = core.clone();
    everything.extend(sources(&root.join("tests")));
    let section = doc
        .split("### Who decides each code")
        .nth(1)
        .expect("docs/reference.md has no \"Who decides each code\" table");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    for code in ErrorCode::ALL {
        let row = rows
            .iter()
            .find(|r| r[0] == format!("`{}`", code.as_str()))
            .unwrap_or_else(|| panic!("the decisions table misses `{}`", code.as_str()));
        assert_eq!(row.len(), 3, "{row:?}");
        let deciders = ticked(row[1]);
        assert!(
            !deciders.is_empty(),
            "no function decides `{}`",
            code.as_str()
        );
        for f in deciders {
            assert!(
                core_function_exists(&f, &core),
                "`{f}` (for `{}`) is not a core function",
                code.as_str()
            );
        }
        let tests = ticked(row[2]);
        assert!(!tests.is_empty(), "no test for `{}`", code.as_str());
        for t in tests {
            assert!(
                everything
                    .iter()
                    .any(|(_, text)| text.contains(&format!("fn {t}()"))),
                "test `{t}` (for `{}`) does not exist",
                code.as_str()
            );
        }
    }
    assert_eq!(
        rows.len(),
        ErrorCode::ALL.len(),
        "a row for a code that does not exist"
    );
}

#[test]
fn dev_vars_example_lists_exactly_the_secrets() {
    let example = read(".dev.vars.example");
    let listed: Vec<&str> = example
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(listed, secrets::ALL, ".dev.vars.example");
    assert!(
        example
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.trim().is_empty() || l.ends_with('=')),
        ".dev.vars.example must not hold values"
    );
}

#[test]
fn every_wrangler_environment_has_valid_vars_and_the_counter_binding() {
    let policy = Policy::from_toml(&read("gateway.toml")).unwrap().0;
    let config: toml::Table = toml::from_str(&read("wrangler.toml")).unwrap();
    let envs = config["env"].as_table().unwrap();
    let mut tables = vec![("(top level)", &config)];
    for name in ["test", "test-limiter-down", "staging", "production"] {
        tables.push((name, envs[name].as_table().unwrap()));
    }
    for (name, table) in tables {
        let vars_table = table["vars"].as_table().unwrap();
        for key in vars_table.keys() {
            assert!(
                vars::ALL.contains(&key.as_str()),
                "[vars] of {name}: the Worker reads no var {key}"
            );
        }
        for key in [
            vars::ENVIRONMENT,
            vars::ORIGIN_URL,
            vars::ISSUERS,
            vars::ALLOWED_HOSTS,
        ] {
            assert!(vars_table.contains_key(key), "[vars] of {name} lacks {key}");
        }
        Environment::from_vars(&policy, |k| {
            vars_table
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|e| panic!("[vars] of {name}: {e}"));
        let dos = table["durable_objects"]["bindings"].as_array().unwrap();
        assert!(
            dos.iter()
                .any(|b| b["name"].as_str() == Some(bindings::RATE_LIMITER)
                    && b["class_name"].as_str() == Some(bindings::RATE_LIMITER_CLASS)),
            "{name} lacks the {} binding",
            bindings::RATE_LIMITER
        );
        for secret in secrets::ALL {
            assert!(
                !vars_table.contains_key(secret),
                "{secret} must be a secret, not a var, in {name}"
            );
        }
    }
    // The log lines are SOC 2 evidence: kept unsampled and shipped by Logpush where it counts.
    for name in ["staging", "production"] {
        let table = envs[name].as_table().unwrap();
        assert_eq!(table["logpush"].as_bool(), Some(true), "{name}");
        let obs = &table["observability"];
        assert_eq!(obs["enabled"].as_bool(), Some(true), "{name}");
        assert_eq!(
            obs["logs"]["head_sampling_rate"].as_integer(),
            Some(1),
            "{name}"
        );
    }
    let production = envs["production"].as_table().unwrap();
    assert_eq!(production["workers_dev"].as_bool(), Some(false));
    assert_eq!(production["preview_urls"].as_bool(), Some(false));
    assert!(!production["routes"].as_array().unwrap().is_empty());
    assert_eq!(
        production["vars"]["ENVIRONMENT"].as_str(),
        Some("production")
    );
    let staging = envs["staging"].as_table().unwrap();
    assert_eq!(staging["preview_urls"].as_bool(), Some(true));
}

/// The name wrangler deploys a configuration as in an environment: `name-<env>` (its default,
/// "legacy" environments), or the environment's own `name`.
fn script_name(config: &toml::Table, env: Option<&str>) -> String {
    let base = config["name"].as_str().unwrap();
    match env {
        None => base.to_owned(),
        Some(env) => config["env"][env]
            .get("name")
            .and_then(|n| n.as_str())
            .map_or_else(|| format!("{base}-{env}"), str::to_owned),
    }
}

/// The gateway implements no Durable Object (so it gets preview URLs): in every environment its
/// RATE_LIMITER binding names the counters Worker of that environment by `script_name`, and the
/// counters Worker defines the class (its migrations) and is reachable only through bindings.
#[test]
fn the_gateway_binds_the_counters_worker_of_its_environment() {
    let gateway: toml::Table = toml::from_str(&read("wrangler.toml")).unwrap();
    let counters: toml::Table = toml::from_str(&read("durable/wrangler.toml")).unwrap();
    assert!(
        !gateway.contains_key("migrations"),
        "the gateway must define no Durable Object class (no migrations)"
    );
    for env in [None, Some("test"), Some("staging"), Some("production")] {
        let table = env.map_or(&gateway, |e| gateway["env"][e].as_table().unwrap());
        assert!(
            !table.contains_key("migrations"),
            "{env:?}: the gateway must define no Durable Object class"
        );
        let binding = table["durable_objects"]["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"].as_str() == Some(bindings::RATE_LIMITER))
            .unwrap();
        assert_eq!(
            binding["script_name"].as_str(),
            Some(script_name(&counters, env).as_str()),
            "{env:?}: the gateway's {} binding must name the counters Worker of the same environment",
            bindings::RATE_LIMITER
        );
        let ctable = env.map_or(&counters, |e| {
            counters["env"]
                .get(e)
                .and_then(|t| t.as_table())
                .unwrap_or_else(|| panic!("durable/wrangler.toml has no env.{e}"))
        });
        assert_eq!(ctable["workers_dev"].as_bool(), Some(false), "{env:?}");
        assert_eq!(ctable["preview_urls"].as_bool(), Some(false), "{env:?}");
        assert!(!ctable.contains_key("routes") && !ctable.contains_key("route"));
        assert!(
            ctable["durable_objects"]["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .any(
                    |b| b["class_name"].as_str() == Some(bindings::RATE_LIMITER_CLASS)
                        && b.get("script_name").is_none()
                ),
            "{env:?}: the counters Worker binds its own class"
        );
    }
    // A fresh account creates the class in the counters Worker (every environment inherits the
    // top-level migrations); `scripts/deploy.sh` swaps the marked block for a transfer.
    let migrations = counters["migrations"].as_array().unwrap();
    assert!(migrations.iter().any(|m| {
        m["new_sqlite_classes"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c.as_str() == Some(bindings::RATE_LIMITER_CLASS))
        })
    }));
    let text = read("durable/wrangler.toml");
    assert_eq!(text.matches("# BEGIN migrations").count(), 1);
    assert_eq!(text.matches("# END migrations").count(), 1);
    // A bare `wrangler deploy` of either Worker reaches nothing: no route, no workers.dev, no
    // preview URL at the top level.
    for (name, config) in [
        ("wrangler.toml", &gateway),
        ("durable/wrangler.toml", &counters),
    ] {
        assert_eq!(config["workers_dev"].as_bool(), Some(false), "{name}");
        assert_eq!(config["preview_urls"].as_bool(), Some(false), "{name}");
        assert!(
            !config.contains_key("routes") && !config.contains_key("route"),
            "{name}"
        );
    }
    // Vars set outside the file (SECRETS_VERSION) survive deploys; a top-level-only key.
    assert_eq!(gateway["keep_vars"].as_bool(), Some(true));
}
