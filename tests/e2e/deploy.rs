//! The deployment files: the systemd units pass `systemd-analyze verify`
//! without a warning (in a scratch root holding the system's own units and
//! stand-ins for the binaries they start); every example configuration
//! loads; the compose file parses (`docker-compose config`, no engine
//! needed) and the Kubernetes manifests validate against the API's schemas
//! (`kubernetes-validate --strict`), each checker also shown a broken copy
//! that it must refuse; every nats-server configuration passes
//! `nats-server -t`; the alert rules and the scrape configuration pass
//! `promtool`, and the rules' unit tests (`alerts.test.yml`) pass. The
//! checkers come from `deploy/local/ensure-deploy-tools.sh` (test.sh runs
//! it).

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd");
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/tools");

/// A checker installed by `deploy/local/ensure-deploy-tools.sh`: under
/// `.ci/tools/` (`relative`), or on `PATH` (`name`).
fn tool(relative: &str, name: &str) -> PathBuf {
    let local = Path::new(TOOLS).join(relative);
    if local.is_file() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is missing: run deploy/local/ensure-deploy-tools.sh (test.sh does)")
        })
}

/// Runs `command`; its success and everything it said.
fn run(command: &mut Command) -> (bool, String) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    (out.status.success(), crate::output_text(&out))
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    // The system's units as they are, symlinks included.
    let system = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&system).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(&system)
        .status()
        .unwrap();
    assert!(copied.success());
    for unit in [
        "baove@.service",
        "baove-nats.service",
        "baove-console.service",
    ] {
        std::fs::copy(Path::new(UNITS).join(unit), units.join(unit)).unwrap();
    }
    // What the units start, as executables in the scratch root.
    for binary in [
        "usr/local/bin/baove-intake",
        "usr/local/bin/baove-casework",
        "usr/local/bin/baove-referral",
        "usr/local/bin/baove-console",
        "usr/sbin/nats-server",
        "bin/kill",
    ] {
        let path = root.path().join(binary);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).unwrap();
    }
    for unit in [
        "baove@intake.service",
        "baove@casework.service",
        "baove@referral.service",
        "baove-nats.service",
        "baove-console.service",
    ] {
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.path().display()))
            .arg(unit)
            .output()
            .expect("systemd-analyze (Debian's systemd package) runs");
        let said = crate::output_text(&out);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{unit}: {said}"
        );
    }
}

#[test]
fn every_example_configuration_loads() {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let mut loaded = 0;
    for dir in ["systemd", "cluster", "local"] {
        for entry in std::fs::read_dir(Path::new(deploy).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                baove_runtime::Config::load_with(Some(&path), |_| None)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                loaded += 1;
            }
        }
    }
    assert!(loaded >= 9, "only {loaded} configurations");
}

#[test]
fn the_compose_file_parses_and_a_broken_one_is_refused() {
    let compose = tool("bin/docker-compose", "docker-compose");
    let dir = Path::new(DEPLOY).join("container");
    let (ok, said) = run(Command::new(&compose)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .args(["-p", "baove", "config", "-q"]));
    assert!(ok, "compose.yaml: {said}");
    // The checker is not a yes-man: a key compose does not know.
    let scratch = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let broken = scratch.path().join("compose.yaml");
    std::fs::write(
        &broken,
        text.replacen("    user: baove-intake", "    usr: baove-intake", 1),
    )
    .unwrap();
    let (ok, said) = run(Command::new(&compose)
        .arg("-f")
        .arg(&broken)
        .args(["-p", "baove", "config", "-q"]));
    assert!(
        !ok && said.contains("usr"),
        "a broken compose file passed: {said}"
    );
}

#[test]
fn the_kubernetes_manifests_validate_and_a_broken_one_is_refused() {
    let validate = tool("venv/bin/kubernetes-validate", "kubernetes-validate");
    let dir = Path::new(DEPLOY).join("kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 5, "{manifests:?}");
    let (ok, said) = run(Command::new(&validate)
        .args(["--strict", "--quiet"])
        .args(&manifests));
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(dir.join("services.yaml")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let broken = scratch.path().join("services.yaml");
    std::fs::write(&broken, text.replacen("replicas: 3", "replicas: three", 1)).unwrap();
    let (ok, said) = run(Command::new(&validate)
        .args(["--strict", "--quiet"])
        .arg(&broken));
    assert!(
        !ok && said.contains("replicas"),
        "a broken manifest passed: {said}"
    );
}

#[test]
fn every_nats_server_configuration_passes_nats_server_t() {
    let nats = baove_testkit::nats_server_binary().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // The users and permissions, as the deployments include them (beside
    // the including file).
    let authorization =
        std::fs::read_to_string(Path::new(DEPLOY).join("nats/authorization.conf.in"))
            .unwrap()
            .replace("@INTAKE_PASSWORD@", "a")
            .replace("@CASEWORK_PASSWORD@", "b")
            .replace("@REFERRAL_PASSWORD@", "c");
    std::fs::write(
        scratch.path().join("nats-authorization.conf"),
        authorization,
    )
    .unwrap();
    let kubernetes =
        std::fs::read_to_string(Path::new(DEPLOY).join("kubernetes/nats.yaml")).unwrap();
    let mut configs = vec![
        (
            "container/nats.conf".to_owned(),
            std::fs::read_to_string(Path::new(DEPLOY).join("container/nats.conf")).unwrap(),
        ),
        (
            "kubernetes/nats.yaml".to_owned(),
            config_map_text(&kubernetes, "nats.conf"),
        ),
    ];
    for node in 1..=3 {
        let name = format!("cluster/nats-{node}.conf");
        let text = std::fs::read_to_string(Path::new(DEPLOY).join(&name)).unwrap()
            + "\ninclude ./nats-authorization.conf\n";
        configs.push((name, text));
    }
    for (name, text) in configs {
        let file = scratch.path().join("nats.conf");
        std::fs::write(&file, &text).unwrap();
        let (ok, said) = run(Command::new(&nats)
            .arg("-c")
            .arg(&file)
            .arg("-t")
            .env("POD_NAME", "nats-0"));
        assert!(ok && said.contains("is valid"), "{name}: {said}");
    }
}

/// The text of `key` in the ConfigMap of `manifest` (a YAML block scalar
/// `key: |`, indented).
fn config_map_text(manifest: &str, key: &str) -> String {
    let mut lines = manifest
        .lines()
        .skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().expect("the key in the manifest");
    let indent = header.len() - header.trim_start().len() + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_alert_rules_and_scrape_configuration_pass_promtool_and_the_rules_unit_tests() {
    let promtool = tool("bin/promtool", "promtool");
    let dir = Path::new(DEPLOY).join("observability");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["check", "config", "prometheus.yml"],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let (ok, said) = run(Command::new(&promtool).args(args).current_dir(&dir));
        assert!(ok && said.contains("SUCCESS"), "promtool {args:?}: {said}");
    }
}
