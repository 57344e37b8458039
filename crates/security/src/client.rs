//! The client side: sending the token (and the stated purpose) with every
//! call.

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;

/// gRPC metadata key of the purpose a caller states for a read, recorded in
/// the access log (ASCII, e.g. `court order 12/2026` or a ticket number).
pub const PURPOSE_METADATA: &str = "baove-purpose";

/// Adds `authorization: Bearer <token>` (and `baove-purpose` when set) to
/// every request.
#[derive(Clone, Debug)]
pub struct Bearer {
    authorization: Option<AsciiMetadataValue>,
    purpose: Option<AsciiMetadataValue>,
}

impl Bearer {
    /// Sends `token`; an empty token sends nothing (the server then answers
    /// UNAUTHENTICATED). A purpose that is not printable ASCII is an error.
    ///
    /// # Errors
    /// When the token or purpose cannot travel as metadata.
    pub fn new(token: &str, purpose: &str) -> Result<Self, String> {
        let authorization = if token.trim().is_empty() {
            None
        } else {
            Some(
                MetadataValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|_| "the token is not printable ASCII".to_owned())?,
            )
        };
        let purpose = if purpose.trim().is_empty() {
            None
        } else {
            Some(
                MetadataValue::try_from(purpose.trim())
                    .map_err(|_| "the purpose must be printable ASCII".to_owned())?,
            )
        };
        Ok(Self {
            authorization,
            purpose,
        })
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(value) = &self.purpose {
            request
                .metadata_mut()
                .insert(PURPOSE_METADATA, value.clone());
        }
        Ok(request)
    }
}

/// A channel that sends a token with every call.
pub type AuthChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;
