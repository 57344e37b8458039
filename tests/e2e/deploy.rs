//! The deployment files: the systemd units pass `systemd-analyze verify`
//! without a warning (in a scratch root holding the system's own units and
//! stand-ins for the binaries they start), and every example configuration
//! loads.

use std::path::Path;

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd");

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
