//! Partitions: one province's share of a national deployment.
//!
//! A service process set up for a partition (`partition = "vn:92"`) keeps
//! that province's log only, and everything it names on NATS is that
//! partition's own: each of its streams ([`Partition::stream`]: the
//! service's events, its log stream, the alert stream) and its lease key
//! ([`Partition::lease_key`]). Two partitions' processes never read each
//! other's streams or contend for one lease, so each partition has its own
//! active, on whichever node took its lease. Without a partition (the
//! default) every name is as it always was: one partition holding every
//! province.
//!
//! The key-value buckets stay shared: their keys are report, case and
//! referral ids, global across partitions, and the lease bucket holds one
//! key per (service, partition).

use crate::StreamSpec;

/// Longest partition id taken (a province's unit id is a few characters).
const ID_MAX: usize = 32;

/// One partition: the province whose records a process keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    province: String,
    token: String,
}

impl Partition {
    /// The partition of province `province` (its unit id, e.g. `vn:92`).
    ///
    /// # Errors
    /// When `province` is empty, longer than 32 characters, or holds
    /// anything but ASCII letters, digits, `:`, `-` and `_`: the message
    /// says which rule.
    pub fn new(province: &str) -> Result<Self, String> {
        if province.is_empty() {
            return Err("is empty: name a province by its unit id, such as vn:92".into());
        }
        if province.len() > ID_MAX {
            return Err(format!("is longer than {ID_MAX} characters"));
        }
        if let Some(c) = province
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_')))
        {
            return Err(format!(
                "holds {c:?}: a province's unit id has only ASCII letters, digits, ':', '-' and '_'"
            ));
        }
        let token = province
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        Ok(Self {
            province: province.to_owned(),
            token,
        })
    }

    /// The province's unit id, as configured (`vn:92`).
    #[must_use]
    pub fn province(&self) -> &str {
        &self.province
    }

    /// The partition's name in subjects and keys (`vn-92`): the unit id in
    /// lowercase, every character but a letter or a digit made `-`.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `spec` as this partition keeps it: `BAOVE_INTAKE` becomes
    /// `BAOVE_INTAKE_VN_92`, capturing `baove.p.vn-92.intake.>` (the `p`
    /// keeps a partition's subjects apart from those of a deployment
    /// without partitions, and from every other partition's).
    ///
    /// The names are made once per process at start and live as long as
    /// it does (they are leaked, as [`StreamSpec`] holds `'static` names).
    #[must_use]
    pub fn stream(&self, spec: StreamSpec) -> StreamSpec {
        let suffix = self.token.to_ascii_uppercase().replace('-', "_");
        let rest = spec.prefix.strip_prefix("baove.").unwrap_or(spec.prefix);
        StreamSpec {
            name: Box::leak(format!("{}_{suffix}", spec.name).into_boxed_str()),
            prefix: Box::leak(format!("baove.p.{}.{rest}", self.token).into_boxed_str()),
        }
    }

    /// The service's key in the lease bucket (`intake.vn-92`): one lease
    /// per (service, partition).
    #[must_use]
    pub fn lease_key(&self, service: &str) -> String {
        format!("{service}.{}", self.token)
    }
}

/// `spec` in `partition`, or `spec` itself without one.
#[must_use]
pub fn stream_in(partition: Option<&Partition>, spec: StreamSpec) -> StreamSpec {
    partition.map_or(spec, |p| p.stream(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_province_when_its_partition_is_made_then_its_names_are_its_own() {
        let p = Partition::new("vn:92").unwrap();
        assert_eq!(p.token(), "vn-92");
        assert_eq!(p.province(), "vn:92");
        let intake = p.stream(crate::INTAKE);
        assert_eq!(intake.name, "BAOVE_INTAKE_VN_92");
        assert_eq!(intake.prefix, "baove.p.vn-92.intake");
        let log = p.stream(crate::logstream::INTAKE_LOG);
        assert_eq!(log.name, "BAOVE_INTAKE_LOG_VN_92");
        assert_eq!(log.prefix, "baove.p.vn-92.log.intake");
        assert_eq!(p.lease_key("intake"), "intake.vn-92");
    }

    #[test]
    fn given_two_partitions_when_their_streams_are_named_then_no_subject_is_shared() {
        let specs = [
            crate::INTAKE,
            crate::CASE,
            crate::REFERRAL,
            crate::ALERT,
            crate::logstream::INTAKE_LOG,
            crate::logstream::CASE_LOG,
            crate::logstream::REFERRAL_LOG,
        ];
        let mut prefixes: Vec<String> = specs.iter().map(|s| s.prefix.to_owned()).collect();
        let mut names: Vec<String> = specs.iter().map(|s| s.name.to_owned()).collect();
        for province in ["vn:92", "vn:01"] {
            let p = Partition::new(province).unwrap();
            for spec in specs {
                let s = p.stream(spec);
                prefixes.push(s.prefix.to_owned());
                names.push(s.name.to_owned());
            }
        }
        // JetStream refuses two streams whose subjects overlap: no prefix
        // may be another's, token by token.
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                let (a_tokens, b_tokens): (Vec<_>, Vec<_>) =
                    (a.split('.').collect(), b.split('.').collect());
                let shorter = a_tokens.len().min(b_tokens.len());
                assert_ne!(
                    a_tokens[..shorter],
                    b_tokens[..shorter],
                    "{a} and {b} overlap"
                );
            }
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "a stream name is used twice");
    }

    #[test]
    fn given_a_bad_province_id_when_a_partition_is_made_then_the_rule_is_named() {
        assert!(Partition::new("").unwrap_err().contains("empty"));
        assert!(Partition::new("vn 92").unwrap_err().contains("' '"));
        assert!(Partition::new("vn.92").unwrap_err().contains("'.'"));
        assert!(Partition::new(&"9".repeat(33)).unwrap_err().contains("32"));
    }

    #[test]
    fn given_no_partition_when_a_stream_is_named_then_it_is_unchanged() {
        assert_eq!(stream_in(None, crate::CASE), crate::CASE);
    }
}
