//! The container path, checked without a Docker engine (none runs here): the Dockerfile's
//! build context compiles on its own, and the Collector config uses the keys current Collector
//! releases document.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sources the build stage (`FROM … AS build`) copies from the context.
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    let build = dockerfile
        .split("\nFROM ")
        .find(|stage| {
            stage
                .lines()
                .next()
                .is_some_and(|l| l.contains(" AS build"))
        })
        .expect("a build stage");
    build
        .lines()
        .filter_map(|l| l.trim().strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let parts: Vec<&str> = args.split_whitespace().collect();
            parts[..parts.len() - 1]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn the_dockerfile_build_context_compiles_on_its_own() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let sources = build_stage_copies(&dockerfile);
    assert!(sources.contains(&"Cargo.toml".to_string()), "{sources:?}");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ must stay out of the build context"
    );
    let context = tempfile::tempdir().unwrap();
    for s in &sources {
        copy(&repo().join(s), &context.path().join(s));
    }
    // Its own target directory: the outer `cargo test` holds the repository's.
    let target = repo().join("target/docker-context");
    let out = Command::new(env!("CARGO"))
        .args(["check", "--locked", "--offline", "--bin", "weft"])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo check in the Dockerfile's context failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every mapping key of a block-style YAML document as a dotted path (`a.b.c`); list items
/// (`- key:`) continue their parent's path. Enough for a config file, not a YAML parser.
fn key_paths(yaml: &str) -> BTreeSet<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut out = BTreeSet::new();
    for line in yaml.lines() {
        let code = line.split(" #").next().unwrap_or("");
        if code.trim().is_empty() || code.trim_start().starts_with('#') {
            continue;
        }
        let mut indent = code.len() - code.trim_start().len();
        let mut rest = code.trim_start();
        while let Some(r) = rest.strip_prefix("- ") {
            indent += 2;
            rest = r.trim_start();
        }
        let Some((key, _)) = rest.split_once(':') else {
            continue;
        };
        if key.contains(' ') || key.starts_with('"') {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = match stack.last() {
            Some((_, p)) => format!("{p}.{key}"),
            None => key.to_string(),
        };
        out.insert(path.clone());
        stack.push((indent, path));
    }
    out
}

#[test]
fn the_collector_config_uses_current_keys() {
    let yaml = std::fs::read_to_string(repo().join("config/otel-collector.yaml")).unwrap();
    let keys = key_paths(&yaml);
    // The Collector's documented top-level sections and service keys.
    let top: BTreeSet<&str> = keys.iter().map(|k| k.split('.').next().unwrap()).collect();
    let known = [
        "receivers",
        "processors",
        "exporters",
        "extensions",
        "connectors",
        "service",
    ];
    assert!(top.iter().all(|t| known.contains(t)), "{top:?}");
    for k in keys
        .iter()
        .filter(|k| k.starts_with("service.") && k.matches('.').count() == 1)
    {
        assert!(
            [
                "service.extensions",
                "service.telemetry",
                "service.pipelines"
            ]
            .contains(&k.as_str()),
            "{k}"
        );
    }
    // `service.telemetry.metrics.address` was removed; internal metrics are readers now.
    assert!(
        !keys.contains("service.telemetry.metrics.address"),
        "{keys:?}"
    );
    assert!(
        keys.contains("service.telemetry.metrics.readers.pull.exporter.prometheus.port"),
        "{keys:?}"
    );
    // Every pipeline exports to weft.
    for signal in ["traces", "logs", "metrics"] {
        assert!(
            keys.contains(&format!("service.pipelines.{signal}.exporters")),
            "{signal}"
        );
    }
}
