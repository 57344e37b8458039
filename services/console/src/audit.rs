//! The auditor's part of a case page: whether the case's hash chain
//! verifies, the latest signed checkpoint of casework's log (its signature
//! checked here, by the console, not taken on trust), the export bundle to
//! download, and who read the case, when and why (the access log).

use baove_proto::v1 as p;

use crate::i18n::tr;
use maud::{Markup, html};

use crate::view::when;

/// What the services answered for the audit panel; each part may have
/// failed on its own (shown as such, never as "intact").
pub struct Audit {
    /// VerifyStream of the case.
    pub chain: Result<p::VerifyStreamResponse, String>,
    /// The latest checkpoint and what checking its signature found.
    pub checkpoint: Result<(p::Checkpoint, Result<(), String>), String>,
    /// The access log of the case, newest first.
    pub access: Result<Vec<p::AccessEntry>, String>,
}

/// Checks a checkpoint's signature against the key it names.
///
/// # Errors
/// What does not hold, in words.
pub fn check_signature(checkpoint: &p::Checkpoint) -> Result<(), String> {
    baove_audit::checkpoint::checkpoint_from_proto(checkpoint)
        .verify(None)
        .map(|_| ())
}

/// The audit panel of a case.
#[must_use]
pub fn panel(case_id: &str, audit: &Audit) -> Markup {
    html! {
        section #audit {
            h2 { (tr("Kiểm tra tính toàn vẹn")) }
            p #chain {
                @match &audit.chain {
                    Ok(v) if v.intact => {
                        strong.ok { (tr("Chuỗi băm nguyên vẹn")) }
                        ": " (v.head.as_ref().map_or(0, |h| h.version)) (tr(" sự kiện, băm cuối "))
                        code { (hex(v.head.as_ref().map_or(&[][..], |h| &h.hash[..]))) }
                    }
                    Ok(v) => {
                        strong.danger { (tr("CHUỖI BĂM BỊ HỎNG")) }
                        (tr(" từ sự kiện #")) (v.first_bad_seq) ": " (v.reason)
                    }
                    Err(e) => { strong.danger { (tr("Không kiểm tra được: ")) } (e) }
                }
            }
            p #checkpoint {
                @match &audit.checkpoint {
                    Ok((c, Ok(()))) => {
                        (tr("Điểm kiểm tra mới nhất của nhật ký: ")) (c.tree_size) (tr(" sự kiện, ký lúc "))
                        (when(Some(&prost_types::Timestamp { seconds: c.signed_at_unix_ms.div_euclid(1000), nanos: 0 })))
                        "; " strong.ok { (tr("chữ ký hợp lệ")) }
                        (tr(" với khóa ")) code { (c.verifier_key) }
                        (tr(" (đối chiếu khóa này với khóa công bố của tỉnh)."))
                    }
                    Ok((_, Err(e))) => { strong.danger { (tr("Chữ ký điểm kiểm tra KHÔNG hợp lệ: ")) } (e) }
                    Err(e) => { (tr("Chưa có điểm kiểm tra: ")) (e) }
                }
            }
            p { a #export href=(format!("/ho-so/{case_id}/xuat")) download { (tr("Tải gói xuất hồ sơ (JSON, kiểm tra được ngoại tuyến)")) } }
            h2 { (tr("Ai đã xem hồ sơ")) }
            @match &audit.access {
                Ok(entries) if entries.is_empty() => p { (tr("Chưa có lượt truy cập nào được ghi.")) },
                Ok(entries) => table #access {
                    thead { tr { th { (tr("Lúc")) } th { (tr("Người")) } th { (tr("Thao tác")) } th { (tr("Mục đích")) } th { (tr("Kết quả")) } } }
                    tbody {
                        @for a in entries {
                            tr {
                                td { (when(Some(&prost_types::Timestamp { seconds: a.recorded_at_unix_ms.div_euclid(1000), nanos: 0 }))) }
                                td { @if let Some(actor) = &a.actor { (actor.user_id) " (" (actor.role) ")" } }
                                td { (a.rpc.rsplit('/').next().unwrap_or_default()) }
                                td { (a.purpose) }
                                td { (a.outcome) }
                            }
                        }
                    }
                },
                Err(e) => p.error { (tr("Không đọc được nhật ký truy cập: ")) (e) },
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_broken_chain_or_a_failed_check_then_the_panel_never_says_intact() {
        let broken = Audit {
            chain: Ok(p::VerifyStreamResponse {
                intact: false,
                first_bad_seq: 3,
                reason: "hash mismatch".into(),
                ..p::VerifyStreamResponse::default()
            }),
            checkpoint: Err("none yet".into()),
            access: Ok(vec![]),
        };
        let html = panel("c-1", &broken).into_string();
        assert!(html.contains("BỊ HỎNG") && html.contains("#3"), "{html}");
        assert!(!html.contains("nguyên vẹn"));
        let failed = Audit {
            chain: Err("unavailable".into()),
            ..broken
        };
        let html = panel("c-1", &failed).into_string();
        assert!(!html.contains("nguyên vẹn") && html.contains("Không kiểm tra được"));
    }

    #[test]
    fn given_a_checkpoint_with_a_wrong_signature_then_it_does_not_verify() {
        let forged = p::Checkpoint {
            note: "baove/casework\n1\nAAAA\n\n— nobody AAAA\n".into(),
            ..p::Checkpoint::default()
        };
        assert!(check_signature(&forged).is_err());
    }
}
