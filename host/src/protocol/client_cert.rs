//! The client's certificate, as nats-server hands it over in `client_tls`:
//! the subject of the leaf of each chain the server verified, for routes.
//!
//! Only verified chains count (`client_tls.verified_chains`, filled when the
//! server runs `tls { verify: true }`): `client_tls.certs` holds whatever a
//! client presented when nothing verified it (`docs/protocol.md` §4). Every
//! verified chain starts with the same leaf, so the first is read, once per
//! request, and only when a route asks. Attributes whose value is not a
//! UTF8, printable, IA5 or ASCII teletex string are left out.

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

/// The longest leaf certificate read (PEM): real ones are 1–3 KiB, and a
/// subject's parse grows with the square of its attributes.
const MAX_LEAF_PEM: usize = 8 * 1024;

/// The named attributes of the subject of the verified leaf certificate;
/// none when nothing was verified or the leaf does not parse.
pub fn verified_subject(tls: &ClientTls) -> Vec<SubjectAttribute> {
    let Some(leaf) = tls.verified_chains.first().and_then(|chain| chain.first()) else {
        return Vec::new();
    };
    if leaf.len() > MAX_LEAF_PEM {
        tracing::debug!(
            bytes = leaf.len(),
            "client certificate too long to read its subject"
        );
        return Vec::new();
    }
    subject_of(leaf).unwrap_or_else(|| {
        tracing::debug!("client certificate not parsed: no subject to route on");
        Vec::new()
    })
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
