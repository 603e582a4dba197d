//! The client's certificate, as nats-server hands it over in `client_tls`:
//! the subject of the leaf of each chain the server verified, for routes.
//!
//! Only verified chains count (`client_tls.verified_chains`, filled when the
//! server runs `tls { verify: true }`): `client_tls.certs` holds whatever a
//! client presented when nothing verified it (`docs/protocol.md` §4).

use std::collections::BTreeMap;

use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{DecodePem as _, Tag, Tagged as _};

use super::claims::ClientTls;

/// The subject attributes a route may name, by their usual short names
/// (RFC 4519).
pub const SUBJECT_ATTRIBUTES: [(&str, ObjectIdentifier); 7] = [
    ("CN", ObjectIdentifier::new_unwrap("2.5.4.3")),
    ("O", ObjectIdentifier::new_unwrap("2.5.4.10")),
    ("OU", ObjectIdentifier::new_unwrap("2.5.4.11")),
    ("C", ObjectIdentifier::new_unwrap("2.5.4.6")),
    ("ST", ObjectIdentifier::new_unwrap("2.5.4.8")),
    ("L", ObjectIdentifier::new_unwrap("2.5.4.7")),
    (
        "DC",
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
    ),
];

/// One subject attribute: its short name and its value.
pub type SubjectAttribute = (&'static str, String);

/// The named attributes of the subject of each verified chain's leaf
/// certificate. A chain whose leaf does not parse has none.
pub fn verified_subjects(tls: &ClientTls) -> impl Iterator<Item = Vec<SubjectAttribute>> + '_ {
    tls.verified_chains
        .iter()
        .filter_map(|chain| chain.first())
        .map(|pem| subject_of(pem).unwrap_or_default())
}

/// Whether `subject` has every attribute of `wanted` (short name → value),
/// compared exactly; an attribute given several times matches any of its
/// values.
pub fn subject_has(subject: &[SubjectAttribute], wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(name, value)| {
        subject
            .iter()
            .any(|(has, has_value)| *has == name.as_str() && has_value == value)
    })
}

/// The named attributes of a PEM certificate's subject.
fn subject_of(pem: &str) -> Option<Vec<SubjectAttribute>> {
    let certificate = Certificate::from_pem(pem.as_bytes()).ok()?;
    let rdns = &certificate.tbs_certificate.subject.0;
    let attributes = rdns
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter_map(|attribute| {
            let (name, _) = SUBJECT_ATTRIBUTES
                .iter()
                .find(|(_, oid)| *oid == attribute.oid)?;
            let value = &attribute.value;
            let text = match value.tag() {
                Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.as_str(),
                Tag::PrintableString => PrintableStringRef::try_from(value).ok()?.as_str(),
                Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.as_str(),
                Tag::TeletexString => TeletexStringRef::try_from(value).ok()?.as_str(),
                _ => return None,
            };
            Some((*name, text.to_string()))
        });
    Some(attributes.collect())
}

/// Whether `name` is an attribute a route may name.
pub fn is_subject_attribute(name: &str) -> bool {
    SUBJECT_ATTRIBUTES.iter().any(|(known, _)| *known == name)
}
