//! Domain values ↔ their proto enums and oneofs, for the values more than
//! one service shows (referral status, steps and kinds). Each service keeps
//! the conversions only it needs next to its API.

use baove_domain::referral::{ReferralKind, Service, Status};
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
