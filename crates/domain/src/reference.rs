//! Reference data: administrative units and agencies with stable ids and
//! names valid over time (DOMAIN.md, 2025 reorganisation). Parsed from JSON
//! text; reading the files is the caller's job.

use std::collections::HashMap;

use ::time::Date;
use serde::Deserialize;

use crate::time::date_serde;

/// A name and the dates it was in force (inclusive; `valid_to` none = now).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ValidName {
    /// The name.
    pub name: String,
    /// First day in force.
    #[serde(with = "date_serde")]
    pub valid_from: Date,
    /// Last day in force, or none.
    #[serde(default, with = "optional_date")]
    pub valid_to: Option<Date>,
}

impl ValidName {
    fn covers(&self, on: Date) -> bool {
        self.valid_from <= on && self.valid_to.is_none_or(|to| on <= to)
    }
}

/// An administrative unit (province/city, ward, commune...).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Unit {
    /// Stable id.
    pub id: String,
    /// `city`, `province`, `ward`, `commune`...
    pub kind: String,
    /// The unit it belonged to when created.
    pub parent: Option<String>,
    /// Names over time.
    pub names: Vec<ValidName>,
    /// The unit that took over an abolished one.
    pub successor: Option<String>,
}

/// An agency (police unit, department, people's committee, hotline...).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Agency {
    /// Stable id.
    pub id: String,
    /// `police`, `child_protection`, `health`, `education`, `hotline`,
    /// `commune_committee`...
    pub kind: String,
    /// The unit it serves (none for national bodies such as 111).
    pub unit: Option<String>,
    /// Names over time.
    pub names: Vec<ValidName>,
    /// The agency that took over its functions.
    pub successor: Option<String>,
    /// The agency alerted when this one does not acknowledge a referral
    /// in time.
    #[serde(default)]
    pub supervisor: Option<String>,
}

/// A change to the agency directory, recorded as an event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum AgencyChange {
    /// The agency takes a new name from `effective`.
    Renamed {
        /// The agency.
        agency_id: String,
        /// Its new name.
        name: String,
        /// First day of the new name.
        #[serde(with = "date_serde")]
        effective: Date,
    },
    /// The agency ends the day before `effective`; `into` takes over its
    /// functions and receives its referrals.
    Merged {
        /// The agency that ends.
        agency_id: String,
        /// Its successor.
        into: String,
        /// First day of the successor's responsibility.
        #[serde(with = "date_serde")]
        effective: Date,
    },
}

/// Schema version of the directory events.
pub const SCHEMA_VERSION: u32 = 1;

/// A directory event, decoded (kept by the referral service, which owns
/// the agency directory's changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// An agency renamed or merged.
    AgencyChanged(AgencyChange),
}

crate::event::stored_events! {
    DirectoryEvent, SCHEMA_VERSION,
    AgencyChanged => "AgencyChanged",
}

/// Something with names valid over time.
trait Dated {
    fn names(&self) -> &[ValidName];
    fn successor(&self) -> Option<&str>;
}

impl Dated for Unit {
    fn names(&self) -> &[ValidName] {
        &self.names
    }
    fn successor(&self) -> Option<&str> {
        self.successor.as_deref()
    }
}

impl Dated for Agency {
    fn names(&self) -> &[ValidName] {
        &self.names
    }
    fn successor(&self) -> Option<&str> {
        self.successor.as_deref()
    }
}

/// The loaded reference data.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    units: HashMap<String, Unit>,
    agencies: HashMap<String, Agency>,
}

#[derive(Deserialize)]
struct UnitsFile {
    units: Vec<Unit>,
}

#[derive(Deserialize)]
struct AgenciesFile {
    agencies: Vec<Agency>,
}

impl Directory {
    /// Parses `units.json` and `agencies.json` texts.
    ///
    /// # Errors
    /// What is wrong, naming the file: bad JSON, a duplicate id, a unit with
    /// no name, or a parent, successor or agency unit that does not exist.
    pub fn parse(units_json: &str, agencies_json: &str) -> Result<Self, String> {
        let units: UnitsFile =
            serde_json::from_str(units_json).map_err(|e| format!("units.json: {e}"))?;
        let agencies: AgenciesFile =
            serde_json::from_str(agencies_json).map_err(|e| format!("agencies.json: {e}"))?;
        let mut directory = Self::default();
        for unit in units.units {
            if unit.names.is_empty() {
                return Err(format!("units.json: unit {} has no name", unit.id));
            }
            if directory
                .units
                .insert(unit.id.clone(), unit.clone())
                .is_some()
            {
                return Err(format!("units.json: duplicate id {}", unit.id));
            }
        }
        for agency in agencies.agencies {
            if agency.names.is_empty() {
                return Err(format!("agencies.json: agency {} has no name", agency.id));
            }
            if directory
                .agencies
                .insert(agency.id.clone(), agency.clone())
                .is_some()
            {
                return Err(format!("agencies.json: duplicate id {}", agency.id));
            }
        }
        for unit in directory.units.values() {
            for link in [&unit.parent, &unit.successor].into_iter().flatten() {
                if !directory.units.contains_key(link) {
                    return Err(format!(
                        "units.json: unit {} refers to unknown unit {link}",
                        unit.id
                    ));
                }
            }
        }
        for agency in directory.agencies.values() {
            if let Some(unit) = &agency.unit
                && !directory.units.contains_key(unit)
            {
                return Err(format!(
                    "agencies.json: agency {} serves unknown unit {unit}",
                    agency.id
                ));
            }
            if let Some(next) = &agency.successor
                && !directory.agencies.contains_key(next)
            {
                return Err(format!(
                    "agencies.json: agency {} has unknown successor {next}",
                    agency.id
                ));
            }
        }
        Ok(directory)
    }

    /// The unit `id`, which must be in force on `on`.
    ///
    /// # Errors
    /// The rule: unknown id, or not in force then (naming the successor).
    pub fn unit_in_force(&self, id: &str, on: Date) -> Result<&Unit, String> {
        let unit = self
            .units
            .get(id)
            .ok_or_else(|| format!("unknown administrative unit {id:?}"))?;
        in_force(unit, "administrative unit", id, on)
    }

    /// The agency `id` of kind `kind`, in force on `on`.
    ///
    /// # Errors
    /// The rule: unknown id, another kind, or not in force then.
    pub fn agency_in_force(&self, id: &str, kind: &str, on: Date) -> Result<&Agency, String> {
        let agency = self
            .agencies
            .get(id)
            .ok_or_else(|| format!("unknown agency {id:?}"))?;
        if agency.kind != kind {
            return Err(format!(
                "agency {id:?} is a {} agency, not {kind}",
                agency.kind
            ));
        }
        in_force(agency, "agency", id, on)
    }

    /// Applies a directory change.
    ///
    /// # Errors
    /// The rule, when an agency is unknown, the change predates the name in
    /// force, or a merger names the agency itself or a successor not in
    /// force on that day.
    pub fn apply_change(&mut self, change: &AgencyChange) -> Result<(), String> {
        match change {
            AgencyChange::Renamed {
                agency_id,
                name,
                effective,
            } => {
                if name.trim().is_empty() {
                    return Err("the new name is required".into());
                }
                let agency = self
                    .agencies
                    .get_mut(agency_id)
                    .ok_or_else(|| format!("unknown agency {agency_id:?}"))?;
                close_current(&mut agency.names, *effective)?;
                agency.names.push(ValidName {
                    name: name.trim().to_owned(),
                    valid_from: *effective,
                    valid_to: None,
                });
                Ok(())
            }
            AgencyChange::Merged {
                agency_id,
                into,
                effective,
            } => {
                if agency_id == into {
                    return Err("an agency cannot be merged into itself".into());
                }
                self.agency_in_force_any(into, *effective)
                    .map_err(|e| format!("successor: {e}"))?;
                let agency = self
                    .agencies
                    .get_mut(agency_id)
                    .ok_or_else(|| format!("unknown agency {agency_id:?}"))?;
                close_current(&mut agency.names, *effective)?;
                agency.successor = Some(into.clone());
                Ok(())
            }
        }
    }

    fn agency_in_force_any(&self, id: &str, on: Date) -> Result<&Agency, String> {
        let agency = self
            .agencies
            .get(id)
            .ok_or_else(|| format!("unknown agency {id:?}"))?;
        in_force(agency, "agency", id, on)
    }

    /// The agency that receives what is addressed to `id` on `on`: itself
    /// if in force, else its successor (followed through mergers).
    ///
    /// # Errors
    /// The rule, when the agency is unknown or neither it nor a successor is
    /// in force then.
    pub fn receiving_agency(&self, id: &str, on: Date) -> Result<&Agency, String> {
        let mut current = self
            .agencies
            .get(id)
            .ok_or_else(|| format!("unknown agency {id:?}"))?;
        for _ in 0..16 {
            if current.names.iter().any(|n| n.covers(on)) {
                return Ok(current);
            }
            let Some(next) = current.successor.as_deref() else {
                break;
            };
            current = self
                .agencies
                .get(next)
                .ok_or_else(|| format!("unknown successor {next:?}"))?;
        }
        Err(format!(
            "agency {id:?} and its successors were not in force on {}",
            crate::time::format_date(on)
        ))
    }

    /// The unit's name in force on `on` (the latest one if none was).
    #[must_use]
    pub fn unit_name(&self, id: &str, on: Date) -> Option<&str> {
        self.units.get(id).and_then(|u| name_on(u, on))
    }

    /// The agency's name in force on `on` (the latest one if none was).
    #[must_use]
    pub fn agency_name(&self, id: &str, on: Date) -> Option<&str> {
        self.agencies.get(id).and_then(|a| name_on(a, on))
    }
}

/// Ends the name in force on `effective` the day before.
fn close_current(names: &mut [ValidName], effective: Date) -> Result<(), String> {
    let current = names
        .iter_mut()
        .find(|n| n.covers(effective))
        .ok_or_else(|| {
            format!(
                "no name in force on {}",
                crate::time::format_date(effective)
            )
        })?;
    if current.valid_from >= effective {
        return Err(format!(
            "the change must start after {}",
            crate::time::format_date(current.valid_from)
        ));
    }
    current.valid_to = effective.previous_day();
    Ok(())
}

fn in_force<'a, T: Dated>(item: &'a T, what: &str, id: &str, on: Date) -> Result<&'a T, String> {
    if item.names().iter().any(|n| n.covers(on)) {
        return Ok(item);
    }
    Err(match item.successor() {
        Some(next) => format!(
            "{what} {id:?} was not in force on {}; its successor is {next:?}",
            crate::time::format_date(on)
        ),
        None => format!(
            "{what} {id:?} was not in force on {}",
            crate::time::format_date(on)
        ),
    })
}

fn name_on<T: Dated>(item: &T, on: Date) -> Option<&str> {
    item.names()
        .iter()
        .find(|n| n.covers(on))
        .or_else(|| item.names().last())
        .map(|n| n.name.as_str())
}

mod optional_date {
    use ::time::Date;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| crate::time::parse_date(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::date;

    const UNITS: &str = r#"{"units":[
      {"id":"vn-ct","kind":"city","parent":null,"successor":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2004-01-01","valid_to":null}]},
      {"id":"vn-ct.p-vi-thanh","kind":"ward","parent":"vn-ct","successor":null,"names":[{"name":"Phường Vị Thanh","valid_from":"2025-07-01","valid_to":null}]},
      {"id":"vn-hg.p-1","kind":"ward","parent":null,"successor":"vn-ct.p-vi-thanh","names":[{"name":"Phường I","valid_from":"2004-01-01","valid_to":"2025-06-30"}]}
    ]}"#;
    const AGENCIES: &str = r#"{"agencies":[
      {"id":"hg.so-ldtbxh","kind":"child_protection","unit":null,"successor":"ct.so-yt","names":[{"name":"Sở LĐTBXH Hậu Giang","valid_from":"2004-01-01","valid_to":"2025-02-28"}]},
      {"id":"ct.so-yt","kind":"health","unit":"vn-ct","successor":null,"names":[{"name":"Sở Y tế Cần Thơ","valid_from":"2004-01-01","valid_to":null}]}
    ]}"#;

    #[test]
    fn given_the_2025_merger_when_looking_up_an_old_ward_then_it_is_valid_only_before() {
        let d = Directory::parse(UNITS, AGENCIES).unwrap();
        assert!(d.unit_in_force("vn-hg.p-1", date!(2024 - 03 - 01)).is_ok());
        let err = d
            .unit_in_force("vn-hg.p-1", date!(2025 - 08 - 01))
            .unwrap_err();
        assert!(err.contains("successor is \"vn-ct.p-vi-thanh\""), "{err}");
        assert!(
            d.unit_in_force("vn-ct.p-vi-thanh", date!(2025 - 08 - 01))
                .is_ok()
        );
        assert!(
            d.unit_in_force("nowhere", date!(2025 - 08 - 01))
                .unwrap_err()
                .contains("unknown")
        );
    }

    #[test]
    fn given_an_old_case_then_the_name_of_its_time_is_shown() {
        let d = Directory::parse(UNITS, AGENCIES).unwrap();
        assert_eq!(
            d.agency_name("hg.so-ldtbxh", date!(2024 - 01 - 01)),
            Some("Sở LĐTBXH Hậu Giang")
        );
        assert!(
            d.agency_in_force("ct.so-yt", "police", date!(2025 - 08 - 01))
                .unwrap_err()
                .contains("not police")
        );
    }

    #[test]
    fn given_an_agency_renamed_then_merged_then_old_dates_show_the_old_name_and_new_referrals_reach_the_successor()
     {
        let agencies = r#"{"agencies":[
          {"id":"a","kind":"police","unit":"vn-ct","successor":null,"names":[{"name":"Công an thị xã","valid_from":"2004-01-01","valid_to":null}]},
          {"id":"b","kind":"police","unit":"vn-ct","successor":null,"names":[{"name":"Công an thành phố","valid_from":"2004-01-01","valid_to":null}]}
        ]}"#;
        let mut d = Directory::parse(UNITS, agencies).unwrap();
        d.apply_change(&AgencyChange::Renamed {
            agency_id: "a".into(),
            name: "Công an thành phố Ngã Bảy".into(),
            effective: date!(2025 - 01 - 01),
        })
        .unwrap();
        d.apply_change(&AgencyChange::Merged {
            agency_id: "a".into(),
            into: "b".into(),
            effective: date!(2025 - 07 - 01),
        })
        .unwrap();
        assert_eq!(
            d.agency_name("a", date!(2024 - 06 - 01)),
            Some("Công an thị xã")
        );
        assert_eq!(
            d.agency_name("a", date!(2025 - 03 - 01)),
            Some("Công an thành phố Ngã Bảy")
        );
        assert_eq!(
            d.receiving_agency("a", date!(2025 - 03 - 01)).unwrap().id,
            "a"
        );
        assert_eq!(
            d.receiving_agency("a", date!(2025 - 08 - 01)).unwrap().id,
            "b"
        );
        let err = d
            .apply_change(&AgencyChange::Merged {
                agency_id: "b".into(),
                into: "b".into(),
                effective: date!(2026 - 01 - 01),
            })
            .unwrap_err();
        assert!(err.contains("itself"), "{err}");
        let err = d
            .apply_change(&AgencyChange::Renamed {
                agency_id: "b".into(),
                name: "x".into(),
                effective: date!(2004 - 01 - 01),
            })
            .unwrap_err();
        assert!(err.contains("must start after"), "{err}");
    }

    #[test]
    fn given_a_dangling_successor_then_loading_fails_naming_it() {
        let units = UNITS.replace(
            "\"successor\":\"vn-ct.p-vi-thanh\"",
            "\"successor\":\"vn-ct.p-gone\"",
        );
        let err = Directory::parse(&units, AGENCIES).unwrap_err();
        assert!(err.contains("vn-ct.p-gone"), "{err}");
    }
}
