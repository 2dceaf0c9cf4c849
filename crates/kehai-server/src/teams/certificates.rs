//! kehai's encryption certificates: Graph encrypts rich notifications' presence for the current
//! one. Generated on first need (RSA-2048, self-signed — Graph does not check the issuer), its
//! private key sealed at rest.

use base64::{Engine, engine::general_purpose::STANDARD};
use kehai_store::{EncryptionCertificate, Sealed};
use secrecy::SecretString;

use crate::{error::ApiError, state::AppState};

/// The current certificate's id and base64 DER, made if there is none.
pub async fn current(state: &AppState) -> Result<(String, String), ApiError> {
    if let Some(c) = state.store.current_certificate().await? {
        return Ok((c.id, c.certificate));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(ApiError::internal)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(ApiError::internal)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "kehai notification encryption");
    let cert = params.self_signed(&key).map_err(ApiError::internal)?;
    let id = format!("kehai-{}", uuid::Uuid::new_v4());
    let private_key = SecretString::from(STANDARD.encode(key.serialize_der()));
    let sealed = state
        .secrets
        .seal(&private_key, &kehai_store::secrets::row_label("certificate", &id, "private_key"))
        .map_err(ApiError::internal)?;
    let record = EncryptionCertificate {
        id: id.clone(),
        certificate: STANDARD.encode(cert.der()),
        private_key: Sealed(sealed),
        created_at: state.clock.now(),
        retired_at: None,
    };
    match state.store.add_certificate(&record).await {
        Ok(()) => Ok((record.id, record.certificate)),
        // Another request made one meanwhile: use the current one.
        Err(_) => state
            .store
            .current_certificate()
            .await?
            .map(|c| (c.id, c.certificate))
            .ok_or_else(|| ApiError::internal("no certificate")),
    }
}
