//! The one policy table: which role may call which RPC. Deny by default: an
//! RPC not in the table is refused to everyone. The README's policy table
//! is [`markdown_table`] (a test keeps them equal).
//!
//! The table decides by role alone. Scope is then checked by the service
//! on the record itself, with [`crate::Caller`]:
//! - commune officers: only cases and intakes of their units, and the
//!   statistics (`GetIndicators`, `ExportIndicators`) of their own units
//!   only, never the province-wide table (it breaks counts down by
//!   commune);
//! - hotline operators and police: only the intakes they logged (the same
//!   user id, role and agency as the token);
//! - police and agency staff: only referrals offered to their agency, the
//!   summary of a case referred to them while that referral grants access
//!   (offered to completed plus 30 days; never once declined or revoked),
//!   the child's identity only where that referral's consent or legal
//!   basis covers it, and the informant only where it says so;
//! - province officers and auditors: the records of the provinces in their
//!   token's `units` (a province that merged into theirs included), or
//!   every record when it lists none; auditors see confidential fields
//!   redacted.
//!
//! Health and reflection are open (`grpc.health.v1`, `grpc.reflection`):
//! they say nothing about cases.

use crate::Role::{
    self, Administrator as Adm, AgencyStaff as Ags, Auditor as Aud, CommuneOfficer as Com,
    HotlineOperator as Hot, Police as Pol, ProvinceOfficer as Pro,
};

/// What the table says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, reflection).
    Open,
    /// The role may call it.
    Allowed,
    /// The role may not (or the RPC is not in the table).
    Denied,
}

const CASE_READERS: &[Role] = &[Com, Pro, Pol, Ags, Aud];
const CASE_WRITERS: &[Role] = &[Com, Pro];
const AUDIT: &[Role] = &[Aud];

/// The table: gRPC method path → the roles that may call it.
pub const POLICY: &[(&str, &[Role])] = &[
    ("/baove.v1.IntakeService/SubmitHotlineReport", &[Hot]),
    ("/baove.v1.IntakeService/CheckHotlineReport", &[Hot]),
    ("/baove.v1.IntakeService/SubmitPoliceNotification", &[Pol]),
    ("/baove.v1.IntakeService/RecordReceivedReport", &[Com, Pro]),
    (
        "/baove.v1.IntakeService/GetIntake",
        &[Hot, Com, Pro, Pol, Ags, Aud],
    ),
    (
        "/baove.v1.IntakeService/ListIntakes",
        &[Hot, Com, Pro, Pol, Aud],
    ),
    ("/baove.v1.IntakeService/EraseCase", &[Pro]),
    (
        "/baove.v1.IntakeService/SearchUnits",
        &[Hot, Com, Pro, Pol, Ags, Aud],
    ),
    ("/baove.v1.CaseService/GetCase", CASE_READERS),
    ("/baove.v1.CaseService/ListCases", &[Com, Pro, Aud]),
    ("/baove.v1.CaseService/WatchCase", &[Com, Pro, Aud]),
    ("/baove.v1.CaseService/WatchDeadlines", &[Com, Pro, Aud]),
    ("/baove.v1.CaseService/AssignOfficer", CASE_WRITERS),
    (
        "/baove.v1.CaseService/RecordInitialAssessment",
        CASE_WRITERS,
    ),
    ("/baove.v1.CaseService/RecordEmergencyMeasure", CASE_WRITERS),
    (
        "/baove.v1.CaseService/RecordDetailedAssessment",
        CASE_WRITERS,
    ),
    ("/baove.v1.CaseService/DraftPlan", CASE_WRITERS),
    ("/baove.v1.CaseService/ApprovePlan", CASE_WRITERS),
    ("/baove.v1.CaseService/SendBackPlan", CASE_WRITERS),
    ("/baove.v1.CaseService/RecordIntervention", CASE_WRITERS),
    ("/baove.v1.CaseService/RecordReview", CASE_WRITERS),
    ("/baove.v1.CaseService/CloseCase", CASE_WRITERS),
    ("/baove.v1.CaseService/ReopenCase", CASE_WRITERS),
    ("/baove.v1.CaseService/AddNote", CASE_WRITERS),
    ("/baove.v1.CaseService/RequestReferral", CASE_WRITERS),
    ("/baove.v1.CaseService/ReplayCase", AUDIT),
    ("/baove.v1.ReferralService/ListInbox", &[Pol, Ags, Pro, Aud]),
    (
        "/baove.v1.ReferralService/GetReferral",
        &[Pol, Ags, Com, Pro, Aud],
    ),
    (
        "/baove.v1.ReferralService/WatchInbox",
        &[Pol, Ags, Pro, Aud],
    ),
    ("/baove.v1.ReferralService/Acknowledge", &[Pol, Ags]),
    ("/baove.v1.ReferralService/Accept", &[Pol, Ags]),
    ("/baove.v1.ReferralService/Decline", &[Pol, Ags]),
    ("/baove.v1.ReferralService/ReportOutcome", &[Pol, Ags]),
    ("/baove.v1.ReferralService/Complete", &[Pol, Ags]),
    ("/baove.v1.ReferralService/Revoke", CASE_WRITERS),
    ("/baove.v1.ReferralService/RenameAgency", &[Adm]),
    ("/baove.v1.ReferralService/MergeAgency", &[Adm]),
    ("/baove.v1.ReportingService/GetIndicators", &[Com, Pro, Aud]),
    (
        "/baove.v1.ReportingService/ExportIndicators",
        &[Com, Pro, Aud],
    ),
    ("/baove.v1.AuditService/ReadStream", AUDIT),
    ("/baove.v1.AuditService/ReadAll", AUDIT),
    ("/baove.v1.AuditService/VerifyStream", AUDIT),
    ("/baove.v1.AuditService/VerifyAll", AUDIT),
    ("/baove.v1.AuditService/ListAccess", AUDIT),
    ("/baove.v1.AuditService/StreamHistory", AUDIT),
    ("/baove.v1.AuditService/GetCheckpoint", AUDIT),
    ("/baove.v1.AuditService/ProveInclusion", AUDIT),
    ("/baove.v1.AuditService/ProveConsistency", AUDIT),
    ("/baove.v1.AuditService/AddCosignature", AUDIT),
    ("/baove.v1.AuditService/ExportCase", AUDIT),
    ("/baove.v1.AuditService/Backup", AUDIT),
];

/// Open without a token: health checks and reflection.
#[must_use]
pub fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// What the table says about `role` calling `path`.
#[must_use]
pub fn allowed(role: Role, path: &str) -> Access {
    if is_open(path) {
        return Access::Open;
    }
    match POLICY.iter().find(|(p, _)| *p == path) {
        Some((_, roles)) if roles.contains(&role) => Access::Allowed,
        _ => Access::Denied,
    }
}

/// The table as Markdown, one row per RPC and a column per role (✓ allowed,
/// blank refused), as the README shows it.
#[must_use]
pub fn markdown_table() -> String {
    let mut out = String::from("| RPC |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push('\n');
    for (path, roles) in POLICY {
        let name = path.trim_start_matches("/baove.v1.");
        out.push_str(&format!("| `{name}` |"));
        for role in Role::ALL {
            out.push_str(if roles.contains(&role) {
                " ✓ |"
            } else {
                "  |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn given_an_rpc_missing_from_the_table_then_every_role_is_refused() {
        for role in Role::ALL {
            assert_eq!(
                allowed(role, "/baove.v1.CaseService/DeleteEverything"),
                Access::Denied
            );
        }
    }

    #[test]
    fn given_health_or_reflection_then_no_token_is_needed() {
        assert_eq!(
            allowed(Role::Police, "/grpc.health.v1.Health/Check"),
            Access::Open
        );
        assert!(is_open(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
    }

    #[test]
    fn given_the_roles_of_the_issue_then_the_table_says_what_they_may_do() {
        let may = |role, rpc: &str| allowed(role, &format!("/baove.v1.{rpc}")) == Access::Allowed;
        // The administrator touches the directory, never case content.
        assert!(may(Role::Administrator, "ReferralService/MergeAgency"));
        for (path, _) in POLICY {
            let rpc = path.trim_start_matches("/baove.v1.");
            if !rpc.ends_with("Agency") {
                assert!(!may(Role::Administrator, rpc), "{rpc}");
            }
        }
        // Auditors read, never change a case or a referral.
        assert!(may(Role::Auditor, "CaseService/ReplayCase"));
        assert!(!may(Role::Auditor, "CaseService/CloseCase"));
        assert!(!may(Role::Auditor, "ReferralService/Accept"));
        assert!(!may(Role::Auditor, "IntakeService/SubmitHotlineReport"));
        // Only auditors use the audit RPCs.
        assert!(!may(Role::ProvinceOfficer, "AuditService/ReadStream"));
        // Hotline operators submit and read intakes, nothing else.
        assert!(may(
            Role::HotlineOperator,
            "IntakeService/SubmitHotlineReport"
        ));
        assert!(!may(Role::HotlineOperator, "CaseService/GetCase"));
        // Police act on referrals, not on the case procedure.
        assert!(may(Role::Police, "ReferralService/Acknowledge"));
        assert!(!may(Role::Police, "CaseService/AssignOfficer"));
    }

    #[test]
    fn the_readme_shows_this_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        assert!(
            readme.contains(&markdown_table()),
            "README's policy table differs from the code; it should read:\n{}",
            markdown_table()
        );
    }
}
