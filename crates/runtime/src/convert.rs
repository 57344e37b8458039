//! Domain values ↔ their proto enums and oneofs, for the values more than
//! one service shows (referral status, steps and kinds, forms of abuse).
//! Each service keeps the conversions only it needs next to its API.

use baove_domain::intake::{AbuseType, ReportStatus};
use baove_domain::referral::{ReferralKind, Service, Status};

/// The form of abuse of a proto value; none for unspecified or unknown.
#[must_use]
pub fn abuse_type(raw: i32) -> Option<AbuseType> {
    match p::AbuseType::try_from(raw).ok()? {
        p::AbuseType::Violence => Some(AbuseType::Violence),
        p::AbuseType::SexualAbuse => Some(AbuseType::SexualAbuse),
        p::AbuseType::Exploitation => Some(AbuseType::Exploitation),
        p::AbuseType::Trafficking => Some(AbuseType::Trafficking),
        p::AbuseType::Abandonment => Some(AbuseType::Abandonment),
        p::AbuseType::Neglect => Some(AbuseType::Neglect),
        p::AbuseType::Other => Some(AbuseType::Other),
        p::AbuseType::Unspecified => None,
    }
}

/// The report status of a proto value; none when unspecified or unknown.
#[must_use]
pub fn report_status(raw: i32) -> Option<ReportStatus> {
    match p::ReportStatus::try_from(raw).ok()? {
        p::ReportStatus::Abused => Some(ReportStatus::Abused),
        p::ReportStatus::AtRisk => Some(ReportStatus::AtRisk),
        p::ReportStatus::SpecialCircumstances => Some(ReportStatus::SpecialCircumstances),
        p::ReportStatus::Unspecified => None,
    }
}

/// The proto value of a report status (unknown: unspecified).
#[must_use]
pub fn report_status_to_proto(value: ReportStatus) -> i32 {
    (match value {
        ReportStatus::Abused => p::ReportStatus::Abused,
        ReportStatus::AtRisk => p::ReportStatus::AtRisk,
        ReportStatus::SpecialCircumstances => p::ReportStatus::SpecialCircumstances,
        ReportStatus::Unknown => p::ReportStatus::Unspecified,
    }) as i32
}

/// The proto value of a form of abuse.
#[must_use]
pub fn abuse_type_to_proto(value: AbuseType) -> i32 {
    (match value {
        AbuseType::Violence => p::AbuseType::Violence,
        AbuseType::SexualAbuse => p::AbuseType::SexualAbuse,
        AbuseType::Exploitation => p::AbuseType::Exploitation,
        AbuseType::Trafficking => p::AbuseType::Trafficking,
        AbuseType::Abandonment => p::AbuseType::Abandonment,
        AbuseType::Neglect => p::AbuseType::Neglect,
        AbuseType::Other => p::AbuseType::Other,
    }) as i32
}
use baove_proto::v1 as p;

/// The proto status of a referral status.
#[must_use]
pub const fn referral_status(status: Status) -> p::ReferralStatus {
    match status {
        Status::Offered => p::ReferralStatus::Offered,
        Status::Acknowledged => p::ReferralStatus::Acknowledged,
        Status::Accepted => p::ReferralStatus::Accepted,
        Status::Declined => p::ReferralStatus::Declined,
        Status::OutcomeReported => p::ReferralStatus::OutcomeReported,
        Status::Completed => p::ReferralStatus::Completed,
        Status::Revoked => p::ReferralStatus::Revoked,
    }
}

/// The domain status of a proto status; `None` for UNSPECIFIED.
#[must_use]
pub const fn referral_status_from_proto(status: p::ReferralStatus) -> Option<Status> {
    Some(match status {
        p::ReferralStatus::Unspecified => return None,
        p::ReferralStatus::Offered => Status::Offered,
        p::ReferralStatus::Acknowledged => Status::Acknowledged,
        p::ReferralStatus::Accepted => Status::Accepted,
        p::ReferralStatus::Declined => Status::Declined,
        p::ReferralStatus::OutcomeReported => Status::OutcomeReported,
        p::ReferralStatus::Completed => Status::Completed,
        p::ReferralStatus::Revoked => Status::Revoked,
    })
}

/// The proto step of a stored referral step name (`ReferralOffered`...,
/// and casework's `ReferralRequested`); UNSPECIFIED for an unknown name.
#[must_use]
pub fn referral_step(event_type: &str) -> p::ReferralStep {
    match event_type {
        "ReferralRequested" => p::ReferralStep::Requested,
        "ReferralOffered" => p::ReferralStep::Offered,
        "ReferralAcknowledged" => p::ReferralStep::Acknowledged,
        "ReferralAccepted" => p::ReferralStep::Accepted,
        "ReferralDeclined" => p::ReferralStep::Declined,
        "ReferralOutcomeReported" => p::ReferralStep::OutcomeReported,
        "ReferralCompleted" => p::ReferralStep::Completed,
        "ReferralRevoked" => p::ReferralStep::Revoked,
        "ReferralEscalated" => p::ReferralStep::Escalated,
        _ => p::ReferralStep::Unspecified,
    }
}

/// The proto service of a requested service.
#[must_use]
pub const fn requested_service(service: Service) -> p::RequestedService {
    match service {
        Service::PoliceInvestigation => p::RequestedService::PoliceInvestigation,
        Service::MedicalExamination => p::RequestedService::MedicalExamination,
        Service::PsychologicalSupport => p::RequestedService::PsychologicalSupport,
        Service::LegalAid => p::RequestedService::LegalAid,
        Service::SchoolSupport => p::RequestedService::SchoolSupport,
        Service::Shelter => p::RequestedService::Shelter,
    }
}

/// What a referral asks, as the `kind` oneof of `CaseReferral`.
#[must_use]
pub fn case_referral_kind(kind: &ReferralKind) -> p::case_referral::Kind {
    match kind {
        ReferralKind::Refer { service } => {
            p::case_referral::Kind::Service(requested_service(*service) as i32)
        }
        ReferralKind::Transfer { to_unit_id } => {
            p::case_referral::Kind::TransferToUnitId(to_unit_id.clone())
        }
    }
}

/// What a referral asks, as the `kind` oneof of `Referral`.
#[must_use]
pub fn referral_kind(kind: &ReferralKind) -> p::referral::Kind {
    match kind {
        ReferralKind::Refer { service } => {
            p::referral::Kind::Service(requested_service(*service) as i32)
        }
        ReferralKind::Transfer { to_unit_id } => {
            p::referral::Kind::TransferToUnitId(to_unit_id.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_step_has_its_proto_value() {
        for status in [
            Status::Offered,
            Status::Acknowledged,
            Status::Accepted,
            Status::Declined,
            Status::OutcomeReported,
            Status::Completed,
            Status::Revoked,
        ] {
            assert_eq!(
                referral_status_from_proto(referral_status(status)),
                Some(status)
            );
        }
        assert_eq!(
            referral_step("ReferralEscalated"),
            p::ReferralStep::Escalated
        );
        assert_eq!(referral_step("Nonsense"), p::ReferralStep::Unspecified);
    }
}
