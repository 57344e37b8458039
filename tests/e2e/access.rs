//! Who may read a case and its reports follows the referral's life, the
//! informant is shared only by an explicit choice, an identity is the
//! whole token (user, role, agency), and the duplicate check names only
//! what the caller may read.

use std::time::{Duration, Instant};

use baove_proto::v1::{
    self as p, case_service_client::CaseServiceClient, intake_service_client::IntakeServiceClient,
    referral_service_client::ReferralServiceClient,
};
use baove_security::Role;

use crate::casework::opened_case;
use crate::referral::{Agent, in_inbox, start};
use crate::security::refer;
use crate::{Identity, Service, hotline_operator, police, province_officer};

const SCHOOLS: &str = "vn:92/so-gd-dt";
const POLICE: &str = "vn:31135/cong-an";

/// What `who` gets from GetIntake and GetCase: `Ok(intake)` when both
/// answer, the codes otherwise.
async fn reads(
    intake: &Service,
    casework: &Service,
    who: &Identity,
    intake_id: &str,
    case_id: &str,
) -> Result<p::Intake, (tonic::Code, tonic::Code)> {
    let got = IntakeServiceClient::new(intake.channel_as(who).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: intake_id.into(),
        })
        .await;
    let case = CaseServiceClient::new(casework.channel_as(who).await)
        .get_case(p::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await;
    match (got, case) {
        (Ok(i), Ok(_)) => Ok(i.into_inner().intake.unwrap()),
        (i, c) => Err((
            i.err().map_or(tonic::Code::Ok, |s| s.code()),
            c.err().map_or(tonic::Code::Ok, |s| s.code()),
        )),
    }
}

/// Waits (30 s) until `who` can read the intake and the case, or (when
/// `readable` is false) until both refuse with PERMISSION_DENIED.
async fn until(
    intake: &Service,
    casework: &Service,
    who: &Identity,
    ids: (&str, &str),
    readable: bool,
) -> Option<p::Intake> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = reads(intake, casework, who, ids.0, ids.1).await;
        match (&now, readable) {
            (Ok(i), true) => return Some(i.clone()),
            (Err((tonic::Code::PermissionDenied, tonic::Code::PermissionDenied)), false) => {
                return None;
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{} never became {} (last: {:?})",
            who.user,
            if readable { "readable" } else { "refused" },
            now.err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A referral to the schools' support, sharing the child's identity with
/// the guardian's and the child's consent.
fn to_schools_with_consent() -> p::RequestReferralRequest {
    p::RequestReferralRequest {
        service: p::RequestedService::SchoolSupport as i32,
        to_agency_id: SCHOOLS.into(),
        reason: "hỗ trợ học tập".into(),
        shares_identifying_information: true,
        guardian_consent: true,
        child_consent: true,
        ..Default::default()
    }
}

fn informant(i: &p::Intake) -> Option<p::Informant> {
    match &i.report {
        Some(p::intake::Report::Hotline(h)) => h.informant.clone(),
        _ => None,
    }
}

fn child_name(i: &p::Intake) -> String {
    match &i.report {
        Some(p::intake::Report::Hotline(h)) => h
            .facts
            .as_ref()
            .and_then(|f| f.child.as_ref())
            .map(|c| c.full_name.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_follows_the_referral_and_the_informant_goes_only_when_chosen() {
    let full = start().await;
    let (intake, casework) = (&full.system.intake, &full.system.casework);
    let mut o = opened_case(&full.system, "life-1").await;
    let intake_id = o.case().await.intake_ids[0].clone();
    let case_id = o.case_id.clone();
    let ids = (intake_id.as_str(), case_id.as_str());
    let teacher = Identity::new("gv-1", Role::AgencyStaff, SCHOOLS, &[]);
    let officer = province_officer("so-yt-1");

    // Before any referral: nothing.
    assert_eq!(
        reads(intake, casework, &teacher, ids.0, ids.1)
            .await
            .unwrap_err(),
        (tonic::Code::PermissionDenied, tonic::Code::PermissionDenied)
    );

    // Offered to the schools with consent: the child, not the informant.
    let to_schools = refer(&mut o, to_schools_with_consent()).await;
    let seen = until(intake, casework, &teacher, ids, true).await.unwrap();
    assert_eq!(seen.confidential, p::Confidentiality::Shown as i32);
    assert_eq!(child_name(&seen), "Nguyễn Thị Bé");
    assert!(informant(&seen).is_none(), "{seen:?}");
    assert!(seen.informant_withheld);

    // Revoked: gone, from intake and from casework.
    let mut requester = Agent {
        client: ReferralServiceClient::new(full.referral.channel_as(&officer).await),
        referral_id: to_schools.clone(),
        version: in_inbox(
            &mut ReferralServiceClient::new(full.referral.channel_as(&officer).await),
            SCHOOLS,
            &to_schools,
        )
        .await
        .version,
        agency: String::new(),
        n: 0,
    };
    let h = requester.header();
    let mut c = requester.client.clone();
    let revoked = requester.took(
        c.revoke(p::RevokeRequest {
            header: h,
            reason: "gia đình chuyển trường".into(),
        })
        .await,
    );
    assert_eq!(revoked.unwrap(), "revoked");
    until(intake, casework, &teacher, ids, false).await;

    // To the police under a criminal investigation, sharing the informant
    // by choice: the informant too.
    let to_police = refer(
        &mut o,
        p::RequestReferralRequest {
            service: p::RequestedService::PoliceInvestigation as i32,
            to_agency_id: POLICE.into(),
            reason: "dấu hiệu tội phạm".into(),
            shares_identifying_information: true,
            shares_informant: true,
            legal_basis: p::LegalBasis::CriminalInvestigation as i32,
            ..Default::default()
        },
    )
    .await;
    let investigator = police("ca-301", POLICE);
    let seen = until(intake, casework, &investigator, ids, true)
        .await
        .unwrap();
    assert_eq!(informant(&seen).unwrap().full_name, "Trần Thị Cúc");
    assert!(!seen.informant_withheld);
    let case = o.case().await;
    let recorded = case
        .referrals
        .iter()
        .find(|r| r.referral_id == to_police)
        .unwrap();
    assert!(recorded.shares_informant && recorded.grants_access);

    // Every step keeps access; completion keeps it for 30 days only.
    let mut agent = Agent {
        client: ReferralServiceClient::new(full.referral.channel_as(&investigator).await),
        referral_id: to_police.clone(),
        version: 0,
        agency: POLICE.into(),
        n: 0,
    };
    agent.version = in_inbox(&mut agent.client.clone(), POLICE, &to_police)
        .await
        .version;
    let mut c = agent.client.clone();
    let h = agent.header();
    agent
        .took(c.acknowledge(p::AcknowledgeRequest { header: h }).await)
        .unwrap();
    let h = agent.header();
    agent
        .took(c.accept(p::AcceptRequest { header: h }).await)
        .unwrap();
    let h = agent.header();
    agent
        .took(
            c.report_outcome(p::ReportOutcomeRequest {
                header: h,
                outcome: "đã khởi tố vụ án".into(),
                reference: "VA-12/2026".into(),
            })
            .await,
        )
        .unwrap();
    assert!(
        reads(intake, casework, &investigator, ids.0, ids.1)
            .await
            .is_ok()
    );
    let h = agent.header();
    assert_eq!(
        agent
            .took(c.complete(p::CompleteRequest { header: h }).await)
            .unwrap(),
        "completed"
    );
    // Completed: still readable now (wait for the step to reach both)...
    let deadline = Instant::now() + Duration::from_secs(30);
    while !o
        .case()
        .await
        .referrals
        .iter()
        .any(|r| r.referral_id == to_police && r.last_step == p::ReferralStep::Completed as i32)
    {
        assert!(
            Instant::now() < deadline,
            "completion never reached the case"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reads(intake, casework, &investigator, ids.0, ids.1)
            .await
            .is_ok()
    );
    // ...and no longer 31 days later.
    let month = 31 * 24 * 60 * 60 * 1000;
    intake.move_clock(month);
    casework.move_clock(month);
    until(intake, casework, &investigator, ids, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_referral_ends_access_and_the_informant_needs_the_childs_identity() {
    let full = start().await;
    let (intake, casework) = (&full.system.intake, &full.system.casework);
    let mut o = opened_case(&full.system, "declined-1").await;
    let intake_id = o.case().await.intake_ids[0].clone();
    let case_id = o.case_id.clone();
    let ids = (intake_id.as_str(), case_id.as_str());

    // The informant alone cannot be shared.
    o.version = o.case().await.version;
    let header = o.header();
    let refused = o
        .client
        .request_referral(p::RequestReferralRequest {
            header,
            service: p::RequestedService::MedicalExamination as i32,
            to_agency_id: "vn:92/so-y-te".into(),
            reason: "khám".into(),
            shares_informant: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("shares_informant"),
        "{refused:?}"
    );

    let id = refer(
        &mut o,
        p::RequestReferralRequest {
            service: p::RequestedService::MedicalExamination as i32,
            to_agency_id: "vn:92/so-y-te".into(),
            reason: "khám sức khỏe".into(),
            ..Default::default()
        },
    )
    .await;
    let doctor = Identity::new("yt-1", Role::AgencyStaff, "vn:92/so-y-te", &[]);
    let seen = until(intake, casework, &doctor, ids, true).await.unwrap();
    assert_eq!(seen.confidential, p::Confidentiality::Redacted as i32);
    let mut agent = Agent {
        client: ReferralServiceClient::new(full.referral.channel_as(&doctor).await),
        referral_id: id.clone(),
        version: 0,
        agency: "vn:92/so-y-te".into(),
        n: 0,
    };
    agent.version = in_inbox(&mut agent.client.clone(), "vn:92/so-y-te", &id)
        .await
        .version;
    let mut c = agent.client.clone();
    let h = agent.header();
    agent
        .took(
            c.decline(p::DeclineRequest {
                header: h,
                reason: "không đúng chuyên môn".into(),
            })
            .await,
        )
        .unwrap();
    until(intake, casework, &doctor, ids, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_is_user_role_and_agency_and_duplicates_name_only_what_the_caller_may_read() {
    let system = crate::intake::System::start().await;
    let mut operator = IntakeServiceClient::new(system.intake.channel().await);
    let first = operator
        .submit_hotline_report(crate::intake::hotline("dup-1", "Phạm Thị Hoa"))
        .await
        .unwrap()
        .into_inner();
    let first_case = crate::intake::case_of(&system.intake, &first.intake_id).await;

    // A police token whose subject is the operator's id is someone else.
    let impostor = police("op-17", POLICE);
    let status = IntakeServiceClient::new(system.intake.channel_as(&impostor).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: first.intake_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let listed = IntakeServiceClient::new(system.intake.channel_as(&impostor).await)
        .list_intakes(p::ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.intakes.is_empty(), "{listed:?}");
    // The same id under the same role from another agency: someone else too.
    let other_hotline = Identity::new("op-17", Role::HotlineOperator, "tongdai-khac", &[]);
    let status = IntakeServiceClient::new(system.intake.channel_as(&other_hotline).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: first.intake_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    // Another operator reports the same child: told there may be a
    // duplicate, not which case.
    let mut second_request = crate::intake::hotline("dup-2", "Phạm Thị Hoa");
    if let Some(r) = second_request.report.as_mut() {
        r.operator_id = String::new();
    }
    let other = hotline_operator("op-99");
    let second = IntakeServiceClient::new(system.intake.channel_as(&other).await)
        .submit_hotline_report(second_request)
        .await
        .unwrap()
        .into_inner();
    assert!(second.possible_duplicate);
    assert!(second.possible_duplicate_case_ids.is_empty(), "{second:?}");
    let own = IntakeServiceClient::new(system.intake.channel_as(&other).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: second.intake_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    assert!(own.possible_duplicate && own.possible_duplicate_case_ids.is_empty());
    // A request id another operator used is not answered with their receipt.
    let mut reused = crate::intake::hotline("dup-1", "Ai Đó");
    if let Some(r) = reused.report.as_mut() {
        r.operator_id = String::new();
    }
    let status = IntakeServiceClient::new(system.intake.channel_as(&other).await)
        .submit_hotline_report(reused)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // The department, who may read both, sees the pairing on the report
    // and on the case.
    let department = province_officer("so-yt-1");
    let paired = IntakeServiceClient::new(system.intake.channel_as(&department).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: second.intake_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    assert_eq!(paired.possible_duplicate_case_ids, vec![first_case.clone()]);
    let second_case = crate::intake::case_of(&system.intake, &second.intake_id).await;
    let case = CaseServiceClient::new(system.casework.channel_as(&department).await)
        .get_case(p::GetCaseRequest {
            case_id: second_case,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.possible_duplicate_case_ids, vec![first_case]);
}

/// GetCase as `who`, once it answers (30 s).
async fn case_as(casework: &Service, who: &Identity, case_id: &str) -> p::Case {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match CaseServiceClient::new(casework.channel_as(who).await)
            .get_case(p::GetCaseRequest {
                case_id: case_id.into(),
            })
            .await
        {
            Ok(case) => return case.into_inner().case.unwrap(),
            Err(status) => assert!(
                Instant::now() < deadline,
                "{} never read {case_id}: {status:?}",
                who.user
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_read_through_a_referral_names_a_duplicate_case_once_that_one_is_referred_too() {
    let full = start().await;
    let casework = &full.system.casework;
    let mut first = opened_case(&full.system, "pair-1").await;
    let mut second = opened_case(&full.system, "pair-2").await;
    let officer = province_officer("so-yt-1");
    assert_eq!(
        case_as(casework, &officer, &second.case_id)
            .await
            .possible_duplicate_case_ids,
        vec![first.case_id.clone()],
        "the department reads both and sees the pairing"
    );
    let to_schools = to_schools_with_consent();
    let teacher = Identity::new("gv-1", Role::AgencyStaff, SCHOOLS, &[]);

    // Only the second case is referred to the schools: the teacher reads
    // it, and is not told of the first.
    refer(&mut second, to_schools.clone()).await;
    let seen = case_as(casework, &teacher, &second.case_id).await;
    assert!(seen.possible_duplicate_case_ids.is_empty(), "{seen:?}");

    // The first is referred too: as soon as the teacher may read it, the
    // second case names it.
    refer(&mut first, to_schools).await;
    case_as(casework, &teacher, &first.case_id).await;
    let seen = case_as(casework, &teacher, &second.case_id).await;
    assert_eq!(
        seen.possible_duplicate_case_ids,
        vec![first.case_id.clone()]
    );
}
