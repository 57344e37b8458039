//! Reference data: administrative units and agencies with stable ids and
//! names valid over time (DOMAIN.md, 2025 reorganisation). Parsed from JSON
//! text; reading the files is the caller's job.
//!
//! Unit ids are the national statistics office's codes: `vn:<code>` for the
//! units in force from 1 July 2025 (34 provinces, 3,321 communes),
//! `vn-pre2025:<code>` for the provinces, districts and communes in force
//! until 30 June 2025, each with its successor(s). `deploy/reference/`
//! generates the files from maintained open data (its README says how).
//!
//! Rules kept here, each with a test:
//! - a report's place is a commune-level unit (ward, commune, town, special
//!   zone), in force on the day the report was received or on the day it
//!   happened ([`Directory::unit_for_report`]);
//! - the commune responsible for a case is the incident unit when it is in
//!   force on the day of the report, else its successor then; a unit split
//!   between several successors needs the one whose area holds the
//!   incident's address, chosen by whoever records the report (the address
//!   decides; when it does not, the officer chooses) ([`Directory::responsible_unit`]);
//! - statistics count a case under its incident unit while that unit was in
//!   force on the period's last day, and under its successor for periods
//!   ending after the change ([`Directory::roll_up`]);
//! - an id of the early hand-typed seed (an alias) keeps working as the
//!   official id it maps to: stored events are never rewritten.

use std::collections::{HashMap, HashSet};

use ::time::Date;
use serde::Deserialize;

use crate::time::date_serde;

/// A name and the dates it was in force (inclusive; `valid_from` none =
/// since before the records here start, `valid_to` none = still in force).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ValidName {
    /// The name.
    pub name: String,
    /// First day in force, if known.
    #[serde(default, with = "crate::time::optional_date_serde")]
    pub valid_from: Option<Date>,
    /// Last day in force, or none.
    #[serde(default, with = "crate::time::optional_date_serde")]
    pub valid_to: Option<Date>,
}

impl ValidName {
    fn covers(&self, on: Date) -> bool {
        self.valid_from.is_none_or(|from| from <= on) && self.valid_to.is_none_or(|to| on <= to)
    }
}

/// Kinds of commune-level units: where a report's place can be.
pub const COMMUNE_LEVEL_KINDS: [&str; 5] =
    ["ward", "commune", "town", "special_zone", "island_district"];

/// An administrative unit (province/city, district, ward, commune...).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Unit {
    /// Stable id (`vn:<code>` or `vn-pre2025:<code>`).
    pub id: String,
    /// The official code, when the unit has one.
    #[serde(default)]
    pub code: Option<String>,
    /// `city`, `province`, `district`, `ward`, `commune`, `town`,
    /// `special_zone`, `island_district`.
    pub kind: String,
    /// The unit it belongs to (a province has none).
    pub parent: Option<String>,
    /// Names over time.
    pub names: Vec<ValidName>,
    /// The unit(s) that took over an abolished one: several when it was
    /// split.
    #[serde(default)]
    pub successors: Vec<String>,
}

impl Unit {
    /// Whether a report's place can be this unit.
    #[must_use]
    pub fn is_commune_level(&self) -> bool {
        COMMUNE_LEVEL_KINDS.contains(&self.kind.as_str())
    }
}

/// The words [`Directory::search`] looks a unit up by.
#[derive(Clone, Debug)]
struct SearchKey {
    id: String,
    /// Of one of its names.
    own: Vec<String>,
    /// Of its district's and province's names.
    around: Vec<String>,
}

/// A unit found by [`Directory::search`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitMatch {
    /// The unit's id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its name with its district and province, as in force on the day
    /// searched for (or the latest, for a unit that ended).
    pub label: String,
    /// The province-level unit it belongs to.
    pub province_id: String,
    /// Its last day in force, for units that ended.
    pub valid_to: Option<Date>,
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
    fn successors(&self) -> Vec<&str>;
}

impl Dated for Unit {
    fn names(&self) -> &[ValidName] {
        &self.names
    }
    fn successors(&self) -> Vec<&str> {
        self.successors.iter().map(String::as_str).collect()
    }
}

impl Dated for Agency {
    fn names(&self) -> &[ValidName] {
        &self.names
    }
    fn successors(&self) -> Vec<&str> {
        self.successor.as_deref().into_iter().collect()
    }
}

/// The loaded reference data.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    units: HashMap<String, Unit>,
    agencies: HashMap<String, Agency>,
    unit_aliases: HashMap<String, String>,
    agency_aliases: HashMap<String, String>,
    /// Search words of each unit's names, in file order.
    unit_keys: Vec<SearchKey>,
    /// For each province-level unit, the units that belong to it then or
    /// now (its own, and those of the former provinces that became it).
    within_province: HashMap<String, HashSet<String>>,
}

#[derive(Deserialize)]
struct UnitsFile {
    units: Vec<Unit>,
}

#[derive(Deserialize)]
struct AgenciesFile {
    agencies: Vec<Agency>,
}

#[derive(Deserialize)]
struct AliasesFile {
    #[serde(default)]
    units: HashMap<String, String>,
    #[serde(default)]
    agencies: HashMap<String, String>,
}

/// How deep successor and parent chains are followed (a cycle in the data
/// ends there instead of looping).
const CHAIN_MAX: usize = 16;

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
        let units_order: Vec<String> = units.units.iter().map(|u| u.id.clone()).collect();
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
            for link in unit.parent.iter().chain(&unit.successors) {
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
            for (what, link) in [
                ("successor", &agency.successor),
                ("supervisor", &agency.supervisor),
            ] {
                if let Some(next) = link
                    && !directory.agencies.contains_key(next)
                {
                    return Err(format!(
                        "agencies.json: agency {} has unknown {what} {next}",
                        agency.id
                    ));
                }
            }
        }
        directory.unit_keys = directory.search_keys(&units_order);
        let mut within: HashMap<String, HashSet<String>> = HashMap::new();
        for id in directory.units.keys() {
            for province in directory.provinces_of(id) {
                within
                    .entry(province.to_owned())
                    .or_default()
                    .insert(id.clone());
            }
        }
        directory.within_province = within;
        Ok(directory)
    }

    /// The search words of every unit: those of its own name, then those
    /// of its district and province (so that "phuong i vi thanh" finds
    /// Phường I of Vị Thanh).
    fn search_keys(&self, order: &[String]) -> Vec<SearchKey> {
        let words = |text: &str| -> Vec<String> {
            crate::text::search_key(text)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut keys = Vec::new();
        for id in order {
            let Some(unit) = self.units.get(id) else {
                continue;
            };
            let mut around = Vec::new();
            let mut current = unit;
            for _ in 0..CHAIN_MAX {
                let Some(parent) = current.parent.as_ref().and_then(|p| self.units.get(p)) else {
                    break;
                };
                for name in &parent.names {
                    around.extend(words(&name.name));
                }
                current = parent;
            }
            for name in &unit.names {
                keys.push(SearchKey {
                    id: unit.id.clone(),
                    own: words(&name.name),
                    around: around.clone(),
                });
            }
        }
        keys
    }

    /// Adds the aliases of `aliases.json`: old ids that keep working as the
    /// official ids they map to.
    ///
    /// # Errors
    /// Bad JSON, an alias that is itself an id, or a target that does not
    /// exist, naming it.
    pub fn with_aliases(mut self, aliases_json: &str) -> Result<Self, String> {
        let aliases: AliasesFile =
            serde_json::from_str(aliases_json).map_err(|e| format!("aliases.json: {e}"))?;
        for (old, new) in &aliases.units {
            if self.units.contains_key(old) {
                return Err(format!("aliases.json: {old} is a unit id, not an alias"));
            }
            if !self.units.contains_key(new) {
                return Err(format!("aliases.json: {old} maps to unknown unit {new}"));
            }
        }
        for (old, new) in &aliases.agencies {
            if self.agencies.contains_key(old) {
                return Err(format!("aliases.json: {old} is an agency id, not an alias"));
            }
            if !self.agencies.contains_key(new) {
                return Err(format!("aliases.json: {old} maps to unknown agency {new}"));
            }
        }
        self.unit_aliases = aliases.units;
        self.agency_aliases = aliases.agencies;
        Ok(self)
    }

    /// The official id of a unit id (itself, or what an alias maps to).
    #[must_use]
    pub fn canonical_unit<'a>(&'a self, id: &'a str) -> &'a str {
        self.unit_aliases.get(id).map_or(id, String::as_str)
    }

    /// The official id of an agency id (itself, or what an alias maps to).
    #[must_use]
    pub fn canonical_agency<'a>(&'a self, id: &'a str) -> &'a str {
        self.agency_aliases.get(id).map_or(id, String::as_str)
    }

    fn unit(&self, id: &str) -> Result<&Unit, String> {
        self.units
            .get(self.canonical_unit(id))
            .ok_or_else(|| format!("unknown administrative unit {id:?}"))
    }

    fn agency(&self, id: &str) -> Result<&Agency, String> {
        self.agencies
            .get(self.canonical_agency(id))
            .ok_or_else(|| format!("unknown agency {id:?}"))
    }

    /// The unit `id`, which must be in force on `on`.
    ///
    /// # Errors
    /// The rule: unknown id, or not in force then (naming the successor).
    pub fn unit_in_force(&self, id: &str, on: Date) -> Result<&Unit, String> {
        in_force(self.unit(id)?, "administrative unit", id, on)
    }

    /// The place of a report: a commune-level unit in force on the day the
    /// report was received or on the day it happened (a caller may name a
    /// 2024 incident by the ward of its time, or by today's commune).
    ///
    /// # Errors
    /// The rule: unknown id, not commune-level (naming the kind), or in
    /// force on neither day (naming the successor).
    pub fn unit_for_report(
        &self,
        id: &str,
        received_on: Date,
        occurred_on: Option<Date>,
    ) -> Result<&Unit, String> {
        let unit = self.unit(id)?;
        if !unit.is_commune_level() {
            return Err(format!(
                "must be a ward, commune or special zone; {id:?} is a {}",
                unit.kind
            ));
        }
        match (
            in_force(unit, "administrative unit", id, received_on),
            occurred_on,
        ) {
            (Ok(unit), _) => Ok(unit),
            (Err(_), Some(occurred)) if unit.names.iter().any(|n| n.covers(occurred)) => Ok(unit),
            (Err(rule), Some(occurred)) => Err(format!(
                "{rule}, nor on {} when it happened",
                crate::time::format_date(occurred)
            )),
            (Err(rule), None) => Err(rule),
        }
    }

    /// The units in force on `on` that stand for `id`: itself when in
    /// force, else its successors then (followed through later changes).
    #[must_use]
    pub fn successors_on(&self, id: &str, on: Date) -> Vec<&Unit> {
        let Ok(unit) = self.unit(id) else {
            return Vec::new();
        };
        let mut found: Vec<&Unit> = Vec::new();
        let mut frontier = vec![unit];
        for _ in 0..CHAIN_MAX {
            let mut next = Vec::new();
            for unit in frontier {
                if unit.names.iter().any(|n| n.covers(on)) {
                    if !found.iter().any(|u| u.id == unit.id) {
                        found.push(unit);
                    }
                } else {
                    next.extend(unit.successors.iter().filter_map(|s| self.units.get(s)));
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// The commune responsible on `on` for a report placed in
    /// `incident_id`: the unit itself when in force, else its successor; a
    /// unit split between several successors needs `chosen`, one of them
    /// (the one whose area holds the incident's address).
    ///
    /// # Errors
    /// The rule, naming the candidates: a choice is missing, is not one of
    /// the successors, or is given where there is nothing to choose.
    pub fn responsible_unit(
        &self,
        incident_id: &str,
        on: Date,
        chosen: Option<&str>,
    ) -> Result<String, String> {
        let candidates = self.successors_on(incident_id, on);
        let listed = || {
            candidates
                .iter()
                .map(|u| format!("{} ({})", name_on(*u, on).unwrap_or_default(), u.id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (candidates.as_slice(), chosen) {
            ([], _) => Err(format!(
                "{incident_id:?} has no successor in force on {}",
                crate::time::format_date(on)
            )),
            ([only], None) => Ok(only.id.clone()),
            ([only], Some(chosen)) if self.canonical_unit(chosen) == only.id => Ok(only.id.clone()),
            ([only], Some(_)) => Err(format!(
                "must be empty or {}: the only unit responsible for {incident_id:?}",
                only.id
            )),
            (_, None) => Err(format!(
                "is required: {incident_id:?} was split; name the one whose area holds the incident's address: {}",
                listed()
            )),
            (many, Some(chosen)) => many
                .iter()
                .find(|u| u.id == self.canonical_unit(chosen))
                .map(|u| u.id.clone())
                .ok_or_else(|| {
                    format!(
                        "must be one of the successors of {incident_id:?}: {}",
                        listed()
                    )
                }),
        }
    }

    /// The unit a case of `incident_id` counts under in a period ending on
    /// `last_day`: the incident unit while it was in force then, else its
    /// successor (for a split unit, `responsible_id` when it is one of the
    /// successors, else the incident unit unchanged). Aliases resolve to
    /// official ids.
    #[must_use]
    pub fn roll_up(&self, incident_id: &str, responsible_id: &str, last_day: Date) -> String {
        let incident = self.canonical_unit(incident_id);
        let responsible = self.canonical_unit(responsible_id);
        match self.successors_on(incident, last_day).as_slice() {
            [] => incident.to_owned(),
            [only] => only.id.clone(),
            many => many
                .iter()
                .find(|u| u.id == responsible)
                .map_or_else(|| incident.to_owned(), |u| u.id.clone()),
        }
    }

    /// The province-level unit `id` belongs to (itself for a province).
    #[must_use]
    pub fn province_of(&self, id: &str) -> Option<&Unit> {
        let mut unit = self.unit(id).ok()?;
        for _ in 0..CHAIN_MAX {
            match &unit.parent {
                None => return Some(unit),
                Some(parent) => unit = self.units.get(parent)?,
            }
        }
        None
    }

    /// The province-level units `id` belongs to, then and now: its
    /// province and that province's successors (`vn-pre2025:93` Hậu Giang,
    /// then `vn:92` Cần Thơ). Who may see a record of a province is decided
    /// on this list.
    #[must_use]
    pub fn provinces_of(&self, id: &str) -> Vec<&str> {
        let Some(province) = self.province_of(id) else {
            return Vec::new();
        };
        let mut out = vec![province.id.as_str()];
        let mut frontier = vec![province];
        for _ in 0..CHAIN_MAX {
            let next: Vec<&Unit> = frontier
                .iter()
                .flat_map(|u| u.successors.iter())
                .filter_map(|s| self.units.get(s))
                .filter(|u| !out.contains(&u.id.as_str()))
                .collect();
            if next.is_empty() {
                break;
            }
            out.extend(next.iter().map(|u| u.id.as_str()));
            frontier = next;
        }
        out
    }

    /// The unit ids a scope of `ids` covers, to filter lists by: each id
    /// (communes), every unit of the provinces among them (a province
    /// covers its communes, districts, and the former provinces' units that
    /// became it), and the aliases of all those.
    #[must_use]
    pub fn scope_units(&self, ids: &[String]) -> HashSet<String> {
        let mut out: HashSet<String> = HashSet::new();
        for id in ids {
            let id = self.canonical_unit(id);
            out.insert(id.to_owned());
            if let Some(units) = self.within_province.get(id) {
                out.extend(units.iter().cloned());
            }
        }
        for (alias, target) in &self.unit_aliases {
            if out.contains(target) {
                out.insert(alias.clone());
            }
        }
        out
    }

    /// Units whose name contains every word of `query`, without diacritics
    /// ("ninh kieu" finds Phường Ninh Kiều): commune-level units first, the
    /// units in force on `on` before those that ended, at most `limit`.
    #[must_use]
    pub fn search(&self, query: &str, on: Date, limit: usize) -> Vec<UnitMatch> {
        let words: Vec<String> = crate::text::search_key(query)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return Vec::new();
        }
        let matches = |key: &[String], word: &str| key.iter().any(|k| k.starts_with(word));
        // (unit, query words found in its own name, its own name's length)
        let mut hits: HashMap<&str, (&Unit, usize, usize)> = HashMap::new();
        for key in &self.unit_keys {
            if !words
                .iter()
                .all(|w| matches(&key.own, w) || matches(&key.around, w))
            {
                continue;
            }
            let Some(unit) = self.units.get(&key.id) else {
                continue;
            };
            let own = words.iter().filter(|w| matches(&key.own, w)).count();
            let entry = hits
                .entry(unit.id.as_str())
                .or_insert((unit, own, key.own.len()));
            if own > entry.1 {
                *entry = (unit, own, key.own.len());
            }
        }
        let mut hits: Vec<(&Unit, usize, usize)> = hits.into_values().collect();
        hits.sort_by(|(a, a_own, a_len), (b, b_own, b_len)| {
            let rank = |u: &Unit, own: usize, len: usize| {
                (
                    !u.is_commune_level(),
                    !u.names.iter().any(|n| n.covers(on)),
                    std::cmp::Reverse(own),
                    len,
                )
            };
            rank(a, *a_own, *a_len)
                .cmp(&rank(b, *b_own, *b_len))
                .then_with(|| a.id.cmp(&b.id))
        });
        hits.into_iter()
            .take(limit)
            .map(|(unit, _, _)| self.unit_match(unit, on))
            .collect()
    }

    fn unit_match(&self, unit: &Unit, on: Date) -> UnitMatch {
        let mut parts = vec![name_on(unit, on).unwrap_or_default().to_owned()];
        let mut current = unit;
        let mut province_id = unit.id.clone();
        for _ in 0..CHAIN_MAX {
            let Some(parent) = current.parent.as_ref().and_then(|p| self.units.get(p)) else {
                break;
            };
            parts.push(name_on(parent, on).unwrap_or_default().to_owned());
            province_id.clone_from(&parent.id);
            current = parent;
        }
        UnitMatch {
            id: unit.id.clone(),
            kind: unit.kind.clone(),
            label: parts.join(", "),
            province_id,
            valid_to: unit
                .names
                .iter()
                .filter_map(|n| n.valid_to)
                .max()
                .filter(|_| unit.names.iter().all(|n| n.valid_to.is_some())),
        }
    }

    /// The agency `id` of kind `kind`, in force on `on`.
    ///
    /// # Errors
    /// The rule: unknown id, another kind, or not in force then.
    pub fn agency_in_force(&self, id: &str, kind: &str, on: Date) -> Result<&Agency, String> {
        let agency = self.agency(id)?;
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
                let key = self.canonical_agency(agency_id).to_owned();
                let agency = self
                    .agencies
                    .get_mut(&key)
                    .ok_or_else(|| format!("unknown agency {agency_id:?}"))?;
                close_current(&mut agency.names, *effective)?;
                agency.names.push(ValidName {
                    name: name.trim().to_owned(),
                    valid_from: Some(*effective),
                    valid_to: None,
                });
                Ok(())
            }
            AgencyChange::Merged {
                agency_id,
                into,
                effective,
            } => {
                let key = self.canonical_agency(agency_id).to_owned();
                let into = self.canonical_agency(into).to_owned();
                if key == into {
                    return Err("an agency cannot be merged into itself".into());
                }
                self.agency_in_force_any(&into, *effective)
                    .map_err(|e| format!("successor: {e}"))?;
                let agency = self
                    .agencies
                    .get_mut(&key)
                    .ok_or_else(|| format!("unknown agency {agency_id:?}"))?;
                close_current(&mut agency.names, *effective)?;
                agency.successor = Some(into);
                Ok(())
            }
        }
    }

    fn agency_in_force_any(&self, id: &str, on: Date) -> Result<&Agency, String> {
        in_force(self.agency(id)?, "agency", id, on)
    }

    /// The agency that receives what is addressed to `id` on `on`: itself
    /// if in force, else its successor (followed through mergers).
    ///
    /// # Errors
    /// The rule, when the agency is unknown or neither it nor a successor is
    /// in force then.
    pub fn receiving_agency(&self, id: &str, on: Date) -> Result<&Agency, String> {
        let mut current = self.agency(id)?;
        for _ in 0..CHAIN_MAX {
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
        self.unit(id).ok().and_then(|u| name_on(u, on))
    }

    /// The agency's name in force on `on` (the latest one if none was).
    #[must_use]
    pub fn agency_name(&self, id: &str, on: Date) -> Option<&str> {
        self.agency(id).ok().and_then(|a| name_on(a, on))
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
    if let Some(from) = current.valid_from
        && from >= effective
    {
        return Err(format!(
            "the change must start after {}",
            crate::time::format_date(from)
        ));
    }
    current.valid_to = effective.previous_day();
    Ok(())
}

fn in_force<'a, T: Dated>(item: &'a T, what: &str, id: &str, on: Date) -> Result<&'a T, String> {
    if item.names().iter().any(|n| n.covers(on)) {
        return Ok(item);
    }
    let successors = item.successors();
    Err(match successors.as_slice() {
        [next] => format!(
            "{what} {id:?} was not in force on {}; its successor is {next:?}",
            crate::time::format_date(on)
        ),
        [_, _, ..] => format!(
            "{what} {id:?} was not in force on {}; its successors are {}",
            crate::time::format_date(on),
            successors.join(", ")
        ),
        [] => format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use ::time::macros::date;

    // A slice of the real data: Cần Thơ (vn:92) absorbed Hậu Giang
    // (vn-pre2025:93); Phường I and Phường III of Vị Thanh became Phường Vị
    // Thanh (vn:31321); Xã Tân Long of Phụng Hiệp was split between Xã
    // Thạnh Hòa and the new Xã Tân Long.
    const UNITS: &str = r#"{"units":[
      {"id":"vn:92","kind":"city","parent":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2025-07-01","valid_to":null}]},
      {"id":"vn:31321","kind":"ward","parent":"vn:92","names":[{"name":"Phường Vị Thanh","valid_from":"2025-07-01","valid_to":null}]},
      {"id":"vn:31408","kind":"commune","parent":"vn:92","names":[{"name":"Xã Thạnh Hòa","valid_from":"2025-07-01","valid_to":null}]},
      {"id":"vn:31741","kind":"commune","parent":"vn:92","names":[{"name":"Xã Tân Long","valid_from":"2025-07-01","valid_to":null}]},
      {"id":"vn-pre2025:93","kind":"province","parent":null,"successors":["vn:92"],"names":[{"name":"Tỉnh Hậu Giang","valid_from":null,"valid_to":"2025-06-30"}]},
      {"id":"vn-pre2025:930","kind":"district","parent":"vn-pre2025:93","successors":["vn:92"],"names":[{"name":"Thành phố Vị Thanh","valid_from":null,"valid_to":"2025-06-30"}]},
      {"id":"vn-pre2025:31318","kind":"ward","parent":"vn-pre2025:930","successors":["vn:31321"],"names":[{"name":"Phường I","valid_from":null,"valid_to":"2025-06-30"}]},
      {"id":"vn-pre2025:934","kind":"district","parent":"vn-pre2025:93","successors":["vn:92"],"names":[{"name":"Huyện Phụng Hiệp","valid_from":null,"valid_to":"2025-06-30"}]},
      {"id":"vn-pre2025:31438","kind":"commune","parent":"vn-pre2025:934","successors":["vn:31408","vn:31741"],"names":[{"name":"Xã Tân Long","valid_from":null,"valid_to":"2025-06-30"}]}
    ]}"#;
    const AGENCIES: &str = r#"{"agencies":[
      {"id":"vn-pre2025:93/so-ldtbxh","kind":"child_protection","unit":"vn-pre2025:93","successor":"vn:92/so-y-te","names":[{"name":"Sở LĐTBXH Hậu Giang","valid_from":null,"valid_to":"2025-02-28"}]},
      {"id":"vn:92/so-y-te","kind":"health","unit":"vn:92","successor":null,"names":[{"name":"Sở Y tế Cần Thơ","valid_from":null,"valid_to":null}]}
    ]}"#;
    const ALIASES: &str = r#"{"units":{"vn-ct.p-vi-thanh":"vn:31321","vn-hg.vi-thanh.p-1":"vn-pre2025:31318"},"agencies":{"ct.so-yt":"vn:92/so-y-te"}}"#;

    fn directory() -> Directory {
        Directory::parse(UNITS, AGENCIES)
            .unwrap()
            .with_aliases(ALIASES)
            .unwrap()
    }

    #[test]
    fn given_the_2025_merger_when_looking_up_an_old_ward_then_it_is_valid_only_before() {
        let d = directory();
        assert!(
            d.unit_in_force("vn-pre2025:31318", date!(2024 - 03 - 01))
                .is_ok()
        );
        let err = d
            .unit_in_force("vn-pre2025:31318", date!(2025 - 08 - 01))
            .unwrap_err();
        assert!(err.contains("successor is \"vn:31321\""), "{err}");
        assert!(d.unit_in_force("vn:31321", date!(2025 - 08 - 01)).is_ok());
        assert!(
            d.unit_in_force("nowhere", date!(2025 - 08 - 01))
                .unwrap_err()
                .contains("unknown")
        );
    }

    #[test]
    fn given_a_2024_incident_in_a_former_ward_when_reported_in_2026_then_the_ward_is_accepted_and_its_successor_responsible()
     {
        let d = directory();
        let received = date!(2026 - 03 - 10);
        let occurred = date!(2024 - 11 - 02);
        let unit = d
            .unit_for_report("vn-pre2025:31318", received, Some(occurred))
            .unwrap();
        assert_eq!(unit.id, "vn-pre2025:31318");
        assert_eq!(
            d.responsible_unit("vn-pre2025:31318", received, None)
                .unwrap(),
            "vn:31321"
        );
        // Without the day it happened, only today's units are accepted.
        let err = d
            .unit_for_report("vn-pre2025:31318", received, None)
            .unwrap_err();
        assert!(err.contains("successor is \"vn:31321\""), "{err}");
        // Nor a former ward for an incident after the change.
        let err = d
            .unit_for_report("vn-pre2025:31318", received, Some(date!(2025 - 09 - 01)))
            .unwrap_err();
        assert!(err.contains("nor on 2025-09-01"), "{err}");
        // Today's commune is accepted for an old incident too.
        assert!(
            d.unit_for_report("vn:31321", received, Some(occurred))
                .is_ok()
        );
    }

    #[test]
    fn given_a_province_or_district_when_used_as_a_report_place_then_it_is_refused_naming_the_kind()
    {
        let d = directory();
        for (id, kind) in [("vn:92", "city"), ("vn-pre2025:930", "district")] {
            let err = d
                .unit_for_report(id, date!(2024 - 01 - 01), None)
                .unwrap_err();
            assert!(err.contains("ward, commune or special zone"), "{err}");
            assert!(err.contains(kind), "{err}");
        }
    }

    #[test]
    fn given_a_split_commune_then_the_responsible_successor_must_be_chosen_among_its_successors() {
        let d = directory();
        let on = date!(2026 - 01 - 05);
        let err = d
            .responsible_unit("vn-pre2025:31438", on, None)
            .unwrap_err();
        assert!(err.starts_with("is required"), "{err}");
        assert!(err.contains("Xã Thạnh Hòa (vn:31408)"), "{err}");
        assert!(err.contains("Xã Tân Long (vn:31741)"), "{err}");
        assert_eq!(
            d.responsible_unit("vn-pre2025:31438", on, Some("vn:31741"))
                .unwrap(),
            "vn:31741"
        );
        let err = d
            .responsible_unit("vn-pre2025:31438", on, Some("vn:92"))
            .unwrap_err();
        assert!(err.contains("must be one of the successors"), "{err}");
        // Where there is one responsible unit, another choice is refused.
        let err = d
            .responsible_unit("vn-pre2025:31318", on, Some("vn:31741"))
            .unwrap_err();
        assert!(err.contains("must be empty or vn:31321"), "{err}");
        // A unit in force is responsible itself, before the change too.
        assert_eq!(
            d.responsible_unit("vn-pre2025:31438", date!(2024 - 05 - 05), None)
                .unwrap(),
            "vn-pre2025:31438"
        );
    }

    #[test]
    fn given_a_case_in_a_former_ward_then_it_counts_under_that_ward_before_the_change_and_under_its_successor_after()
     {
        let d = directory();
        let ward = "vn-pre2025:31318";
        assert_eq!(d.roll_up(ward, ward, date!(2024 - 12 - 31)), ward);
        assert_eq!(d.roll_up(ward, ward, date!(2026 - 12 - 31)), "vn:31321");
        // A split commune rolls up to the successor responsible for the case.
        let split = "vn-pre2025:31438";
        assert_eq!(
            d.roll_up(split, "vn:31741", date!(2026 - 12 - 31)),
            "vn:31741"
        );
        assert_eq!(d.roll_up(split, split, date!(2026 - 12 - 31)), split);
        // Seed slugs count as the official unit.
        assert_eq!(
            d.roll_up(
                "vn-hg.vi-thanh.p-1",
                "vn-hg.vi-thanh.p-1",
                date!(2026 - 06 - 30)
            ),
            "vn:31321"
        );
    }

    #[test]
    fn given_an_id_of_the_seed_then_it_keeps_working_as_the_official_id() {
        let d = directory();
        assert_eq!(d.canonical_unit("vn-ct.p-vi-thanh"), "vn:31321");
        assert_eq!(
            d.unit_in_force("vn-ct.p-vi-thanh", date!(2026 - 01 - 01))
                .unwrap()
                .id,
            "vn:31321"
        );
        assert_eq!(
            d.agency_name("ct.so-yt", date!(2026 - 01 - 01)),
            Some("Sở Y tế Cần Thơ")
        );
        assert_eq!(
            d.province_of("vn-hg.vi-thanh.p-1").unwrap().id,
            "vn-pre2025:93"
        );
        assert_eq!(
            d.provinces_of("vn-hg.vi-thanh.p-1"),
            ["vn-pre2025:93", "vn:92"]
        );
        assert_eq!(d.provinces_of("vn:31321"), ["vn:92"]);
        let can_tho = d.scope_units(&["vn:92".to_owned()]);
        for id in [
            "vn:92",
            "vn:31321",
            "vn-pre2025:31318",
            "vn-hg.vi-thanh.p-1",
            "vn-ct.p-vi-thanh",
        ] {
            assert!(can_tho.contains(id), "{id}");
        }
        let ward = d.scope_units(&["vn-ct.p-vi-thanh".to_owned()]);
        assert_eq!(
            ward,
            HashSet::from(["vn:31321".to_owned(), "vn-ct.p-vi-thanh".to_owned()])
        );
        let err = Directory::parse(UNITS, AGENCIES)
            .unwrap()
            .with_aliases(r#"{"units":{"old":"vn:99999"}}"#)
            .unwrap_err();
        assert!(err.contains("vn:99999"), "{err}");
        let err = Directory::parse(UNITS, AGENCIES)
            .unwrap()
            .with_aliases(r#"{"units":{"vn:92":"vn:31321"}}"#)
            .unwrap_err();
        assert!(err.contains("not an alias"), "{err}");
    }

    #[test]
    fn given_a_name_typed_without_diacritics_then_search_finds_the_unit_with_its_province() {
        let d = directory();
        let hits = d.search("vi thanh", date!(2026 - 01 - 01), 10);
        assert_eq!(hits[0].id, "vn:31321", "{hits:?}");
        assert_eq!(hits[0].label, "Phường Vị Thanh, Thành phố Cần Thơ");
        assert_eq!(hits[0].province_id, "vn:92");
        let hits = d.search("phuong i vi thanh", date!(2026 - 01 - 01), 10);
        let old = hits.iter().find(|h| h.id == "vn-pre2025:31318").unwrap();
        assert_eq!(old.label, "Phường I, Thành phố Vị Thanh, Tỉnh Hậu Giang");
        assert_eq!(old.valid_to, Some(date!(2025 - 06 - 30)));
        assert!(d.search("  ", date!(2026 - 01 - 01), 10).is_empty());
    }

    #[test]
    fn given_an_old_case_then_the_name_of_its_time_is_shown() {
        let d = directory();
        assert_eq!(
            d.agency_name("vn-pre2025:93/so-ldtbxh", date!(2024 - 01 - 01)),
            Some("Sở LĐTBXH Hậu Giang")
        );
        assert!(
            d.agency_in_force("vn:92/so-y-te", "police", date!(2025 - 08 - 01))
                .unwrap_err()
                .contains("not police")
        );
    }

    #[test]
    fn given_an_agency_renamed_then_merged_then_old_dates_show_the_old_name_and_new_referrals_reach_the_successor()
     {
        let agencies = r#"{"agencies":[
          {"id":"a","kind":"police","unit":"vn:92","successor":null,"names":[{"name":"Công an thị xã","valid_from":"2004-01-01","valid_to":null}]},
          {"id":"b","kind":"police","unit":"vn:92","successor":null,"names":[{"name":"Công an thành phố","valid_from":"2004-01-01","valid_to":null}]}
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
            "\"successors\":[\"vn:31321\"]",
            "\"successors\":[\"vn:00000\"]",
        );
        let err = Directory::parse(&units, AGENCIES).unwrap_err();
        assert!(err.contains("vn:00000"), "{err}");
    }
}
