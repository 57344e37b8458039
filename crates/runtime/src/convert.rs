//! Domain values ↔ their proto enums and oneofs, for the values more than
//! one service shows (referral status, steps and kinds, the report's
//! enums, concerns), and a case's events as the typed history
//! ([`crate::history::case_event`]). Each service keeps the conversions only it needs next
//! to its API.

use baove_domain::intake::{self as d, AbuseType, ReportStatus};
use baove_domain::referral::{ReferralKind, Service, Status};
use baove_proto::v1 as p;

/// Proto channel → domain (None when unspecified or unknown).
#[must_use]
pub fn channel(raw: i32) -> Option<d::Channel> {
    Some(match p::Channel::try_from(raw).ok()? {
        p::Channel::Unspecified => return None,
        p::Channel::Phone => d::Channel::Phone,
        p::Channel::Zalo => d::Channel::Zalo,
        p::Channel::App => d::Channel::App,
        p::Channel::Web => d::Channel::Web,
        p::Channel::InPerson => d::Channel::InPerson,
        p::Channel::Letter => d::Channel::Letter,
        p::Channel::Press => d::Channel::Press,
        p::Channel::Police => d::Channel::Police,
    })
}

/// Domain channel → proto.
#[must_use]
pub fn channel_to_proto(c: d::Channel) -> p::Channel {
    match c {
        d::Channel::Phone => p::Channel::Phone,
        d::Channel::Zalo => p::Channel::Zalo,
        d::Channel::App => p::Channel::App,
        d::Channel::Web => p::Channel::Web,
        d::Channel::InPerson => p::Channel::InPerson,
        d::Channel::Letter => p::Channel::Letter,
        d::Channel::Press => p::Channel::Press,
        d::Channel::Police => p::Channel::Police,
    }
}

/// Declares a pair of enum conversions proto i32 ↔ domain, with the
/// unspecified value mapping to None.
macro_rules! enum_pair {
    ($from:ident, $to:ident, $proto:ty, $domain:ty, [$($p:ident <=> $d:ident),+ $(,)?]) => {
        /// The domain value of a proto value; none when unspecified or unknown.
        #[must_use]
        pub fn $from(raw: i32) -> Option<$domain> {
            match <$proto>::try_from(raw).ok()? {
                $(<$proto>::$p => Some(<$domain>::$d),)+
                _ => None,
            }
        }
        /// The proto value of a domain value.
        #[must_use]
        pub fn $to(value: $domain) -> i32 {
            match value {
                $(<$domain>::$d => <$proto>::$p as i32,)+
            }
        }
    };
}

enum_pair!(sex, sex_to_proto, p::Sex, d::Sex, [Male <=> Male, Female <=> Female, Unknown <=> Unknown]);
enum_pair!(setting, setting_to_proto, p::AbuseSetting, d::Setting, [
    Home <=> Home, School <=> School, PublicPlace <=> PublicPlace, Online <=> Online,
    Workplace <=> Workplace, CareInstitution <=> CareInstitution, Other <=> Other, Unknown <=> Unknown,
]);
enum_pair!(sexual_form, sexual_form_to_proto, p::SexualAbuseForm, d::SexualAbuseForm, [
    Rape <=> Rape, CoercedIntercourse <=> CoercedIntercourse, IntercourseWithChild <=> IntercourseWithChild,
    IndecentActs <=> IndecentActs, ProstitutionOrPornography <=> ProstitutionOrPornography,
]);
enum_pair!(injury_cause, injury_cause_to_proto, p::InjuryCause, d::InjuryCause, [
    Traffic <=> Traffic, Work <=> Work, Fall <=> Fall, Drowning <=> Drowning, Burn <=> Burn,
    Poisoning <=> Poisoning, Animal <=> Animal, Suicide <=> Suicide, Violence <=> Violence, Other <=> Other,
]);
enum_pair!(injury_outcome, injury_outcome_to_proto, p::InjuryOutcome, d::InjuryOutcome, [
    Died <=> Died, PermanentlyDisabled <=> PermanentlyDisabled, NotDisabled <=> NotDisabled,
    Undetermined <=> Undetermined,
]);
enum_pair!(special, special_to_proto, p::SpecialCircumstance, d::SpecialCircumstance, [
    AOrphaned <=> AOrphaned, BAbandoned <=> BAbandoned, CWithoutCarer <=> CWithoutCarer,
    DDisabled <=> DDisabled, DdHivAids <=> DdHivAids, EInConflictWithLaw <=> EInConflictWithLaw,
    GDrugAddicted <=> GDrugAddicted, HOutOfSchoolWorking <=> HOutOfSchoolWorking,
    IHarmedByViolence <=> IHarmedByViolence, KExploited <=> KExploited, LSexuallyAbused <=> LSexuallyAbused,
    MTrafficked <=> MTrafficked, NSeriouslyIllPoor <=> NSeriouslyIllPoor,
    OMigrantUnaccompanied <=> OMigrantUnaccompanied,
]);

/// The proto message of a report's concerns.
#[must_use]
pub fn concerns_to_proto(c: &d::Concerns) -> p::Concerns {
    p::Concerns {
        abuse_types: c
            .abuse_types
            .iter()
            .map(|t| abuse_type_to_proto(*t))
            .collect(),
        sexual_abuse_forms: c
            .sexual_abuse_forms
            .iter()
            .map(|t| sexual_form_to_proto(*t))
            .collect(),
        injury: c.injury.as_ref().map(|i| p::Injury {
            cause: injury_cause_to_proto(i.cause),
            outcome: injury_outcome_to_proto(i.outcome),
            detail: i.detail.clone(),
        }),
        special_circumstances: c
            .special_circumstances
            .iter()
            .map(|s| special_to_proto(*s))
            .collect(),
    }
}

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
    fn unspecified_and_unknown_enum_values_are_none() {
        assert_eq!(channel(0), None);
        assert_eq!(channel(99), None);
        assert_eq!(channel(p::Channel::Zalo as i32), Some(d::Channel::Zalo));
        assert_eq!(
            special(p::SpecialCircumstance::DdHivAids as i32),
            Some(d::SpecialCircumstance::DdHivAids)
        );
        assert_eq!(
            special_to_proto(d::SpecialCircumstance::OMigrantUnaccompanied),
            14
        );
    }

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
