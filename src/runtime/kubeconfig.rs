//! Reading a kubeconfig named on the command line (file I/O: it lives in the runtime, not in
//! the pure `k8s` facade) (`--kubeconfig FILE`), with errors that name the
//! file once and say what to do; kube's own errors quote the path twice and carry a YAML snippet.

use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, KubeconfigError};

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigFileError {
    #[error("kubeconfig {} does not exist; check --kubeconfig", path.display())]
    Missing { path: PathBuf },
    #[error("could not read kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {} is not valid YAML: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("kubeconfig {} is not usable", path.display())]
    Other {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
}

/// Reads `path` as kube does (relative certificate paths resolved against its directory).
pub fn read(path: &Path) -> Result<Kubeconfig, KubeconfigFileError> {
    let path_buf = || path.to_path_buf();
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(KubeconfigFileError::Missing { path: path_buf() });
        }
        Err(source) => {
            return Err(KubeconfigFileError::Read {
                path: path_buf(),
                source,
            });
        }
        Ok(_) => {}
    }
    Kubeconfig::read_from(path).map_err(|err| match err {
        KubeconfigError::ReadConfig(source, _) => KubeconfigFileError::Read {
            path: path_buf(),
            source,
        },
        KubeconfigError::Parse(yaml) => KubeconfigFileError::Parse {
            path: path_buf(),
            reason: crate::yaml::one_line(&yaml),
        },
        source => KubeconfigFileError::Other {
            path: path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_broken_files_name_the_path_once_on_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = read(&missing).unwrap_err().to_string();
        assert_eq!(err.matches("nope").count(), 1, "{err}");
        assert!(err.contains("--kubeconfig"), "{err}");
        let broken = tmp.path().join("broken");
        std::fs::write(&broken, "clusters: [\n").unwrap();
        let err = read(&broken).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("not valid YAML") && err.contains("line 1"),
            "{err}"
        );
    }
}
