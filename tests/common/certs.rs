//! Test certificates: a CA, and leaf certificates it signed, as PEM files.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::Path;

/// A CA named `ca_name` (`ca.crt`) and, for each of `leaves` (name, subject alt names),
/// `<name>.crt` and `<name>.key` signed by it, in `dir`.
pub fn write_certificates(dir: &Path, ca_name: &str, leaves: &[(&str, Vec<String>)]) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: a leaf named like its issuer would look self-signed to OpenSSL.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("ca.crt", ca_cert.pem());
    for (name, names) in leaves {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(DnType::CommonName, *name);
        let cert = params.signed_by(&key, &issuer).unwrap();
        write(&format!("{name}.crt"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
}
