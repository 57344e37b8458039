//! The reference data the services load (`deploy/reference/`), as generated
//! by `import.py` and `agencies.py`: counts of the 2025 reform, unique
//! codes, successions, and spot checks against the official list.

use std::sync::OnceLock;

use ::time::macros::date;
use baove_domain::reference::Directory;

fn read(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/reference/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap()
}

fn units() -> &'static Vec<serde_json::Value> {
    static UNITS: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
    UNITS.get_or_init(|| {
        let file: serde_json::Value = serde_json::from_str(&read("units.json")).unwrap();
        file["units"].as_array().unwrap().clone()
    })
}

fn directory() -> &'static Directory {
    static DIRECTORY: OnceLock<Directory> = OnceLock::new();
    DIRECTORY.get_or_init(|| {
        Directory::parse(&read("units.json"), &read("agencies.json"))
            .unwrap()
            .with_aliases(&read("aliases.json"))
            .unwrap()
    })
}

fn new_units() -> impl Iterator<Item = &'static serde_json::Value> {
    units()
        .iter()
        .filter(|u| u["id"].as_str().unwrap().starts_with("vn:"))
}

#[test]
fn the_units_in_force_are_the_34_provinces_and_3321_communes_of_the_reform() {
    let provinces = new_units().filter(|u| u["parent"].is_null()).count();
    let communes: Vec<_> = new_units().filter(|u| !u["parent"].is_null()).collect();
    assert_eq!(provinces, 34);
    assert_eq!(communes.len(), 3321);
    let kind = |k: &str| communes.iter().filter(|u| u["kind"] == k).count();
    // Resolution-level totals: 2,621 communes, 687 wards, 13 special zones.
    assert_eq!(
        (kind("commune"), kind("ward"), kind("special_zone")),
        (2621, 687, 13)
    );
    for u in new_units() {
        assert_eq!(u["names"][0]["valid_from"], "2025-07-01", "{u}");
        assert!(u["names"][0]["valid_to"].is_null(), "{u}");
    }
}

#[test]
fn every_code_is_unique_and_every_former_commune_has_a_successor() {
    let mut ids = std::collections::HashSet::new();
    let mut codes = std::collections::HashSet::new();
    for u in units() {
        let id = u["id"].as_str().unwrap();
        assert!(ids.insert(id), "duplicate id {id}");
        let scheme = id.split(':').next().unwrap();
        assert!(
            codes.insert((scheme, u["code"].as_str().unwrap())),
            "duplicate code {id}"
        );
        assert!(id.ends_with(u["code"].as_str().unwrap()), "{id}");
    }
    let d = directory();
    let mut former = 0;
    for u in units() {
        let id = u["id"].as_str().unwrap();
        if !id.starts_with("vn-pre2025:") {
            continue;
        }
        assert_eq!(u["names"][0]["valid_to"], "2025-06-30", "{u}");
        let unit = d.unit_in_force(id, date!(2025 - 06 - 30)).unwrap();
        if unit.is_commune_level() {
            former += 1;
            assert!(
                !d.successors_on(id, date!(2025 - 07 - 01)).is_empty(),
                "{id} has no successor"
            );
        }
    }
    // 10,035 wards, communes and towns, and 5 island districts without
    // communes, before the reform.
    assert_eq!(former, 10_040);
    assert_eq!(
        units()
            .iter()
            .filter(
                |u| u["id"].as_str().unwrap().starts_with("vn-pre2025:") && u["parent"].is_null()
            )
            .count(),
        63
    );
}

#[test]
fn known_codes_and_the_hau_giang_soc_trang_can_tho_succession() {
    let d = directory();
    let on = date!(2026 - 01 - 01);
    // Codes of the official list (Decision 19/2025/QĐ-TTg, as published on
    // danhmuchanhchinh.nso.gov.vn).
    for (id, name) in [
        ("vn:92", "Thành phố Cần Thơ"),
        ("vn:31135", "Phường Ninh Kiều"),
        ("vn:01", "Thành phố Hà Nội"),
        ("vn:00070", "Phường Hoàn Kiếm"),
        ("vn:79", "Thành phố Hồ Chí Minh"),
    ] {
        assert_eq!(d.unit_name(id, on), Some(name), "{id}");
    }
    for old in ["vn-pre2025:92", "vn-pre2025:93", "vn-pre2025:94"] {
        let successors = d.successors_on(old, on);
        assert_eq!(successors.len(), 1, "{old}");
        assert_eq!(successors[0].id, "vn:92", "{old}");
    }
    assert_eq!(
        d.unit_name("vn-pre2025:93", date!(2024 - 01 - 01)),
        Some("Tỉnh Hậu Giang")
    );
    assert_eq!(
        d.unit_name("vn-pre2025:94", date!(2024 - 01 - 01)),
        Some("Tỉnh Sóc Trăng")
    );
    // Phường I of Vị Thanh (Hậu Giang) is now part of Phường Vị Thanh.
    assert_eq!(
        d.responsible_unit("vn-pre2025:31318", on, None).unwrap(),
        "vn:31321"
    );
    assert_eq!(d.province_of("vn:31321").unwrap().id, "vn:92");
    assert_eq!(
        d.province_of("vn-pre2025:31318").unwrap().id,
        "vn-pre2025:93"
    );
}

#[test]
fn can_tho_has_its_police_and_peoples_committee_in_every_commune() {
    let d = directory();
    let on = date!(2026 - 01 - 01);
    let communes: Vec<_> = new_units().filter(|u| u["parent"] == "vn:92").collect();
    assert_eq!(communes.len(), 103);
    for u in communes {
        let id = u["id"].as_str().unwrap();
        let police = d
            .agency_in_force(&format!("{id}/cong-an"), "police", on)
            .unwrap();
        assert_eq!(police.unit.as_deref(), Some(id));
        assert_eq!(police.supervisor.as_deref(), Some("vn:92/cong-an"));
        d.agency_in_force(&format!("{id}/ubnd"), "commune_committee", on)
            .unwrap();
    }
    // The Department of Labour's child protection went to Health in 2025.
    for old in ["vn-pre2025:92", "vn-pre2025:93", "vn-pre2025:94"] {
        assert_eq!(
            d.receiving_agency(&format!("{old}/so-ldtbxh"), on)
                .unwrap()
                .id,
            "vn:92/so-y-te"
        );
    }
}

#[test]
fn search_finds_a_commune_typed_without_diacritics_with_its_province() {
    let d = directory();
    let hits = d.search("ninh kieu", date!(2026 - 01 - 01), 5);
    assert_eq!(hits[0].id, "vn:31135", "{hits:?}");
    assert_eq!(hits[0].label, "Phường Ninh Kiều, Thành phố Cần Thơ");
    let hits = d.search("hoan kiem", date!(2026 - 01 - 01), 5);
    assert_eq!(hits[0].province_id, "vn:01", "{hits:?}");
}

#[test]
fn every_seed_slug_maps_to_an_official_id() {
    let aliases: serde_json::Value = serde_json::from_str(&read("aliases.json")).unwrap();
    let d = directory();
    let on = date!(2026 - 01 - 01);
    for (old, new) in aliases["units"].as_object().unwrap() {
        assert_eq!(d.canonical_unit(old), new.as_str().unwrap());
        assert!(d.unit_name(old, on).is_some(), "{old}");
    }
    assert_eq!(d.canonical_unit("vn-ct.p-ninh-kieu"), "vn:31135");
    assert_eq!(d.canonical_agency("ct.ca-p-ninh-kieu"), "vn:31135/cong-an");
}
