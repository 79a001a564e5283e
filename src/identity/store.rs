//! The identity directory on disk: reading certificates and keys with errors that name the file,
//! writing them atomically (temp file in the same directory + rename; keys 0600), and the
//! operations behind `mc identity init`, `mc identity issue` and the checks of `mc install`.
//!
//! ```text
//! DIR/anchor.crt  anchor.key          (init; the anchor key should then go offline)
//! DIR/<cluster>/issuer.crt issuer.key (issue)
//! ```

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pki::{self, CertKeyPem, PkiError};
use super::verify::{self, ChainError, Validity};
use super::{
    ANCHOR_CERT_FILE, ANCHOR_KEY_FILE, GATEWAY_LEAF_LIFETIME, ISSUER_CERT_FILE, ISSUER_KEY_FILE,
};

/// Certificates and keys are small; refusing anything bigger keeps `/dev/zero` or a mistaken
/// multi-gigabyte path from exhausting memory.
const MAX_FILE_BYTES: u64 = 1 << 20;
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{} does not exist; {hint}", path.display())]
    Missing { path: PathBuf, hint: String },
    #[error("{} is a directory, not a file", path.display())]
    IsDir { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error("{} is larger than {MAX_FILE_BYTES} bytes, too large for a PEM certificate or key", path.display())]
    TooLarge { path: PathBuf },
    #[error("could not read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable certificate", path.display())]
    Cert {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
    #[error("{} is not a usable private key", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
    #[error("the key {} does not belong to the certificate {} (their public keys differ); restore the matching pair or issue a new one", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("could not create the directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the certificate {} expired on {not_after}; {hint}", path.display())]
    Expired {
        path: PathBuf,
        not_after: String,
        hint: String,
    },
    #[error("the certificate {} is not valid before {not_before}; check this machine's clock or wait", path.display())]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{} is not a CA certificate (basicConstraints CA:true is missing)", path.display())]
    NotCa { path: PathBuf },
    #[error("the issuer {} does not chain to the anchor {} (it was signed by another anchor); issue it again with `mc identity issue`", issuer.display(), anchor.display())]
    NotChained {
        issuer: PathBuf,
        anchor: PathBuf,
        #[source]
        source: ChainError,
    },
    #[error("the issuer {} was issued for cluster {found:?}, not {wanted:?}; pass --cluster-name {found} or issue one for {wanted}", path.display())]
    WrongCluster {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("the anchor {} records no trust domain (no spiffe:// URI SAN); create it with `mc identity init`", path.display())]
    NoTrustDomain { path: PathBuf },
    #[error("could not create the {what} certificate")]
    Create {
        what: &'static str,
        #[source]
        source: PkiError,
    },
    #[error("a gateway certificate minted from {} does not verify against the anchor {}", issuer.display(), anchor.display())]
    Probe {
        issuer: PathBuf,
        anchor: PathBuf,
        #[source]
        source: ChainError,
    },
    #[error("the anchor {} expires on {not_after}, before the issuer would start; create a new anchor with `mc identity init --force`", path.display())]
    AnchorTooShort { path: PathBuf, not_after: String },
}

/// Reads a whole small file, refusing directories, missing files (with `missing_hint`) and
/// anything over [`MAX_FILE_BYTES`].
pub fn read_small_file(path: &Path, missing_hint: &str) -> Result<Vec<u8>, StoreError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::Missing {
                path: path.to_owned(),
                hint: missing_hint.to_owned(),
            });
        }
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let is_dir = file.metadata().map(|m| m.is_dir()).unwrap_or(false);
    if is_dir {
        return Err(StoreError::IsDir {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| {
            // Reading a directory fails here on some platforms instead of at metadata().
            if source.kind() == std::io::ErrorKind::IsADirectory {
                return StoreError::IsDir {
                    path: path.to_owned(),
                };
            }
            StoreError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// A PEM file of one or more certificates, kept both as text (for bundles) and DER.
#[derive(Debug, Clone)]
pub struct CertFile {
    pub path: PathBuf,
    pub pem: String,
    /// The first certificate, the one the file is about (a bundle may follow it).
    pub first: CertificateDer<'static>,
    /// Every certificate of the file, `first` included.
    pub ders: Vec<CertificateDer<'static>>,
}

impl CertFile {
    pub fn first(&self) -> &CertificateDer<'static> {
        &self.first
    }
}

pub fn read_cert_file(path: &Path, missing_hint: &str) -> Result<CertFile, StoreError> {
    let bytes = read_small_file(path, missing_hint)?;
    let cert_err = |source| StoreError::Cert {
        path: path.to_owned(),
        source,
    };
    let ders = pki::parse_cert_pems(&bytes).map_err(cert_err)?;
    let first = ders
        .first()
        .cloned()
        .ok_or_else(|| cert_err(PkiError::NoCertificate))?;
    Ok(CertFile {
        path: path.to_owned(),
        pem: String::from_utf8_lossy(&bytes).into_owned(),
        first,
        ders,
    })
}

/// A private key file; the text is kept because `install` puts it into the issuer Secret.
pub struct KeyFile {
    pub path: PathBuf,
    pub pem: String,
    pub key: KeyPair,
}

pub fn read_key_file(path: &Path, missing_hint: &str) -> Result<KeyFile, StoreError> {
    let bytes = read_small_file(path, missing_hint)?;
    warn_if_readable_by_others(path);
    let key = pki::parse_key_pem(&bytes).map_err(|source| StoreError::Key {
        path: path.to_owned(),
        source,
    })?;
    Ok(KeyFile {
        path: path.to_owned(),
        pem: String::from_utf8_lossy(&bytes).into_owned(),
        key,
    })
}

/// Keys restored from a backup or a git checkout often come back 0644; say so, but do not refuse:
/// the operator may have good reasons (and `install` only reads the key to put it in a Secret).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the private key {} is readable by other users (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

fn parse<'a>(file: &'a CertFile, der: &'a [u8]) -> Result<X509Certificate<'a>, StoreError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|source| StoreError::Cert {
            path: file.path.clone(),
            source: PkiError::Certificate(source),
        })
}

/// `2026-12-03T05:12:41Z`, as certificates' dates are shown everywhere.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Refuses a certificate outside its validity window at `now`.
pub fn check_validity(
    file: &CertFile,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
    expired_hint: &str,
) -> Result<(), StoreError> {
    match verify::validity_at(cert, now) {
        Validity::Valid { .. } => Ok(()),
        Validity::Expired { not_after } => Err(StoreError::Expired {
            path: file.path.clone(),
            not_after: rfc3339(not_after),
            hint: expired_hint.to_owned(),
        }),
        Validity::NotYetValid { not_before } => Err(StoreError::NotYetValid {
            path: file.path.clone(),
            not_before: rfc3339(not_before),
        }),
    }
}

fn check_key_matches(cert: &CertFile, key: &KeyFile) -> Result<(), StoreError> {
    let matches = pki::key_matches(cert.first(), &key.key).map_err(|source| StoreError::Cert {
        path: cert.path.clone(),
        source,
    })?;
    if matches {
        Ok(())
    } else {
        Err(StoreError::KeyMismatch {
            key: key.path.clone(),
            cert: cert.path.clone(),
        })
    }
}

/// Paths of an identity directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    pub fn anchor_cert(&self) -> PathBuf {
        self.dir.join(ANCHOR_CERT_FILE)
    }
    pub fn anchor_key(&self) -> PathBuf {
        self.dir.join(ANCHOR_KEY_FILE)
    }
    pub fn issuer_dir(&self, cluster: &str) -> PathBuf {
        self.dir.join(cluster)
    }
    pub fn issuer_cert(&self, cluster: &str) -> PathBuf {
        self.issuer_dir(cluster).join(ISSUER_CERT_FILE)
    }
    pub fn issuer_key(&self, cluster: &str) -> PathBuf {
        self.issuer_dir(cluster).join(ISSUER_KEY_FILE)
    }
    fn init_hint(&self) -> String {
        format!(
            "create it with `mc identity init --dir {}`",
            self.dir.display()
        )
    }
    fn issue_hint(&self, cluster: &str) -> String {
        format!(
            "create it with `mc identity issue --dir {} --cluster-name {cluster}`",
            self.dir.display()
        )
    }
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(StoreError::NotDir {
                path: path.to_owned(),
            });
        }
        Err(_) => {}
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|source| StoreError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// Writes `contents` to `path` through a temp file in the same directory and a rename, so a
/// reader never sees a half-written file and a crash never leaves a truncated key. Without
/// `overwrite`, an existing file is never replaced (checked atomically by the final link).
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let write_err = |source: std::io::Error| StoreError::Write {
        path: path.to_owned(),
        // tempfile appends its temporary file's name, which the user never asked for.
        source: match source.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => source,
        },
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates the file 0600, so a key is never readable by others, not even briefly.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(contents).map_err(write_err)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    let persisted = if overwrite {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    if let Err(err) = persisted {
        if err.error.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(StoreError::Exists {
                path: path.to_owned(),
            });
        }
        return Err(write_err(err.error));
    }
    // Make the rename itself durable.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn refuse_existing(paths: &[PathBuf], force: bool) -> Result<(), StoreError> {
    if force {
        return Ok(());
    }
    for path in paths {
        if fs::symlink_metadata(path).is_ok() {
            return Err(StoreError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

fn write_pair(
    cert_path: &Path,
    key_path: &Path,
    pair: &CertKeyPem,
    force: bool,
) -> Result<(), StoreError> {
    // Key first: a certificate on disk without its key would look usable but is not.
    write_atomic(key_path, pair.key_pem.as_bytes(), KEY_MODE, force)?;
    write_atomic(cert_path, pair.cert_pem.as_bytes(), CERT_MODE, force)
}

/// What `init` and `issue` wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub not_after: OffsetDateTime,
    /// The requested validity was cut to the signer's own expiry.
    pub clamped: bool,
}

/// `mc identity init`: a new anchor in `DIR/anchor.{crt,key}`.
pub fn init_anchor(
    layout: &Layout,
    trust_domain: &str,
    validity: std::time::Duration,
    force: bool,
    now: OffsetDateTime,
) -> Result<Written, StoreError> {
    let (cert, key) = (layout.anchor_cert(), layout.anchor_key());
    refuse_existing(&[cert.clone(), key.clone()], force)?;
    let not_after = now + validity;
    let pair =
        pki::new_anchor(trust_domain, now, not_after).map_err(|source| StoreError::Create {
            what: "anchor",
            source,
        })?;
    create_dir(&layout.dir)?;
    write_pair(&cert, &key, &pair, force)?;
    Ok(Written {
        cert,
        key,
        not_after,
        clamped: false,
    })
}

/// The anchor of a directory, as a signer (needs the anchor key).
pub struct Anchor {
    pub cert: CertFile,
    pub trust_domain: String,
    pub not_after: OffsetDateTime,
    pub signer: Issuer<'static, KeyPair>,
}

pub fn load_anchor_signer(layout: &Layout, now: OffsetDateTime) -> Result<Anchor, StoreError> {
    let cert = read_cert_file(&layout.anchor_cert(), &layout.init_hint())?;
    let key = read_key_file(
        &layout.anchor_key(),
        "the anchor key is needed only to issue; bring it back from where it is kept offline",
    )?;
    let parsed = parse(&cert, cert.first())?;
    if !parsed.is_ca() {
        return Err(StoreError::NotCa {
            path: cert.path.clone(),
        });
    }
    check_validity(
        &cert,
        &parsed,
        now,
        "create a new anchor with `mc identity init --force` and re-issue every cluster",
    )?;
    check_key_matches(&cert, &key)?;
    let trust_domain =
        pki::trust_domain_of(cert.first()).ok_or_else(|| StoreError::NoTrustDomain {
            path: cert.path.clone(),
        })?;
    let not_after = parsed.validity().not_after.to_datetime();
    let signer =
        Issuer::from_ca_cert_der(cert.first(), key.key).map_err(|source| StoreError::Key {
            path: layout.anchor_key(),
            source: PkiError::Issuer(source),
        })?;
    Ok(Anchor {
        cert,
        trust_domain,
        not_after,
        signer,
    })
}

/// `mc identity issue`: a new issuer for `cluster` in `DIR/<cluster>/issuer.{crt,key}`, never
/// outliving the anchor.
pub fn issue_issuer(
    layout: &Layout,
    cluster: &str,
    validity: std::time::Duration,
    force: bool,
    now: OffsetDateTime,
) -> Result<Written, StoreError> {
    super::names::validate_cluster_name(cluster).map_err(|source| StoreError::Create {
        what: "issuer",
        source: PkiError::Name(source),
    })?;
    let (cert, key) = (layout.issuer_cert(cluster), layout.issuer_key(cluster));
    refuse_existing(&[cert.clone(), key.clone()], force)?;
    let anchor = load_anchor_signer(layout, now)?;
    let requested = pki::checked_end(now, validity).map_err(|source| StoreError::Create {
        what: "issuer",
        source,
    })?;
    let not_after = requested.min(anchor.not_after);
    if not_after <= now {
        return Err(StoreError::AnchorTooShort {
            path: anchor.cert.path.clone(),
            not_after: rfc3339(anchor.not_after),
        });
    }
    let pair = pki::new_issuer(
        &anchor.signer,
        cluster,
        &anchor.trust_domain,
        now,
        not_after,
    )
    .map_err(|source| StoreError::Create {
        what: "issuer",
        source,
    })?;
    create_dir(&layout.issuer_dir(cluster))?;
    write_pair(&cert, &key, &pair, force)?;
    Ok(Written {
        cert,
        key,
        not_after,
        clamped: not_after < requested,
    })
}

/// Everything `mc install` needs from an identity directory, checked.
pub struct InstallIdentity {
    /// The anchor bundle (every certificate of `anchor.crt`), for `ca-bundle.crt`.
    pub anchor_pem: String,
    pub trust_domain: String,
    pub issuer_cert_pem: String,
    pub issuer_key_pem: String,
}

impl std::fmt::Debug for InstallIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallIdentity")
            .field("trust_domain", &self.trust_domain)
            .field("issuer_key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

/// Loads and checks the anchor certificate and a cluster's issuer for `install`: files present,
/// parseable, within their validity, the key matching the issuer, the issuer signed by an anchor
/// and made for this cluster, and a gateway leaf minted from it verifying like a peer would.
/// Does not need the anchor key.
pub fn load_for_install(
    layout: &Layout,
    cluster: &str,
    now: OffsetDateTime,
) -> Result<InstallIdentity, StoreError> {
    match fs::metadata(&layout.dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(StoreError::NotDir {
                path: layout.dir.clone(),
            });
        }
        Err(_) => {
            return Err(StoreError::Missing {
                path: layout.dir.clone(),
                hint: format!(
                    "create it with `mc identity init --dir {0}` and `mc identity issue --dir {0} --cluster-name {cluster}`",
                    layout.dir.display()
                ),
            });
        }
    }
    let anchor = read_cert_file(&layout.anchor_cert(), &layout.init_hint())?;
    for der in &anchor.ders {
        let parsed = parse(&anchor, der)?;
        if !parsed.is_ca() {
            return Err(StoreError::NotCa {
                path: anchor.path.clone(),
            });
        }
        check_validity(
            &anchor,
            &parsed,
            now,
            "create a new anchor with `mc identity init --force` and re-issue every cluster",
        )?;
    }
    let trust_domain =
        pki::trust_domain_of(anchor.first()).ok_or_else(|| StoreError::NoTrustDomain {
            path: anchor.path.clone(),
        })?;

    let issue_hint = layout.issue_hint(cluster);
    let issuer = read_cert_file(&layout.issuer_cert(cluster), &issue_hint)?;
    let key = read_key_file(&layout.issuer_key(cluster), &issue_hint)?;
    let parsed = parse(&issuer, issuer.first())?;
    if !parsed.is_ca() {
        return Err(StoreError::NotCa {
            path: issuer.path.clone(),
        });
    }
    check_validity(
        &issuer,
        &parsed,
        now,
        &format!(
            "issue a new one with `mc identity issue --dir {} --cluster-name {cluster} --force`",
            layout.dir.display()
        ),
    )?;
    check_key_matches(&issuer, &key)?;
    verify::verify_ca_signed_by(issuer.first(), &anchor.ders).map_err(|source| {
        StoreError::NotChained {
            issuer: issuer.path.clone(),
            anchor: anchor.path.clone(),
            source,
        }
    })?;
    match pki::cluster_of_issuer(issuer.first()) {
        Some(found) if found != cluster => {
            return Err(StoreError::WrongCluster {
                path: issuer.path.clone(),
                found,
                wanted: cluster.to_owned(),
            });
        }
        _ => {}
    }
    probe_issuer(&issuer, &key, &anchor, cluster, &trust_domain, now)?;
    Ok(InstallIdentity {
        anchor_pem: normalize_pem(&anchor.pem),
        trust_domain,
        issuer_cert_pem: normalize_pem(&issuer.pem),
        issuer_key_pem: normalize_pem(&key.pem),
    })
}

/// Mints a throwaway gateway leaf in memory and verifies it the way a peer gateway will
/// (rustls-webpki: pathLen, key usage, name constraints, every validity window). This catches
/// anything the explicit checks above do not name, before the cluster finds out at handshake time.
fn probe_issuer(
    issuer: &CertFile,
    key: &KeyFile,
    anchor: &CertFile,
    cluster: &str,
    trust_domain: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let probe_err = |source| StoreError::Probe {
        issuer: issuer.path.clone(),
        anchor: anchor.path.clone(),
        source,
    };
    let key = KeyPair::from_pem(&key.pem).map_err(|source| StoreError::Key {
        path: key.path.clone(),
        source: PkiError::Key(source),
    })?;
    let signer =
        Issuer::from_ca_cert_der(issuer.first(), key).map_err(|source| StoreError::Cert {
            path: issuer.path.clone(),
            source: PkiError::Issuer(source),
        })?;
    let leaf = pki::issue_gateway_leaf(
        &signer,
        super::IDENTITY_NAMESPACE,
        cluster,
        trust_domain,
        now,
        GATEWAY_LEAF_LIFETIME,
    )
    .map_err(|source| StoreError::Create {
        what: "gateway",
        source,
    })?;
    let leaf_der =
        pki::parse_cert_pems(leaf.cert_pem.as_bytes()).map_err(|source| StoreError::Create {
            what: "gateway",
            source,
        })?;
    let Some(leaf_der) = leaf_der.first() else {
        return Err(probe_err(ChainError::NotSigned));
    };
    let now: SystemTime = now.into();
    verify::verify_chain(leaf_der, &issuer.ders, &anchor.ders, now).map_err(probe_err)
}

/// PEM text with CRLF line endings and trailing blank lines normalized, so the rendered manifest
/// does not depend on which editor last touched the file.
fn normalize_pem(pem: &str) -> String {
    let mut out: String = pem
        .replace("\r\n", "\n")
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn init_writes_a_0600_key_and_refuses_to_overwrite_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().join("trust"));
        init_anchor(&layout, "cluster.local", YEAR, false, now()).unwrap();
        let mode = fs::metadata(layout.anchor_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let before = fs::read(layout.anchor_key()).unwrap();
        let err = init_anchor(&layout, "cluster.local", YEAR, false, now()).unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }), "{err:?}");
        assert_eq!(fs::read(layout.anchor_key()).unwrap(), before);
        init_anchor(&layout, "cluster.local", YEAR, true, now()).unwrap();
        assert_ne!(fs::read(layout.anchor_key()).unwrap(), before);
        // No temp files are left behind.
        let leftovers: Vec<_> = fs::read_dir(&layout.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn issuer_never_outlives_the_anchor() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        init_anchor(&layout, "cluster.local", YEAR, false, now()).unwrap();
        let written = issue_issuer(&layout, "west", YEAR * 5, false, now()).unwrap();
        assert!(written.clamped);
        let identity = load_for_install(&layout, "west", now()).unwrap();
        assert_eq!(identity.trust_domain, "cluster.local");
    }

    #[test]
    fn install_refuses_an_issuer_made_for_another_cluster() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        init_anchor(&layout, "cluster.local", YEAR, false, now()).unwrap();
        issue_issuer(&layout, "east", YEAR, false, now()).unwrap();
        fs::create_dir(layout.issuer_dir("west")).unwrap();
        fs::copy(layout.issuer_cert("east"), layout.issuer_cert("west")).unwrap();
        fs::copy(layout.issuer_key("east"), layout.issuer_key("west")).unwrap();
        let err = load_for_install(&layout, "west", now()).unwrap_err();
        assert!(matches!(err, StoreError::WrongCluster { .. }), "{err}");
    }

    #[test]
    fn reading_a_directory_or_missing_file_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read_cert_file(tmp.path(), "hint").unwrap_err();
        assert!(matches!(err, StoreError::IsDir { .. }), "{err:?}");
        let missing = tmp.path().join("nope.crt");
        let err = read_cert_file(&missing, "run this").unwrap_err();
        assert!(err.to_string().contains("nope.crt"));
        assert!(err.to_string().contains("run this"));
    }

    #[test]
    fn pem_normalization_is_stable() {
        assert_eq!(normalize_pem("a\r\nb\r\n\r\n"), "a\nb\n");
        assert_eq!(normalize_pem("a\nb"), "a\nb\n");
    }
}
