//! The TLS listener's certificate: configured files, or a self-signed one made on first start.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Names the generated certificate is valid for: what a local SDK user connects to.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Returns the certificate and key paths, generating `DATA_DIR/tls/{cert,key}.pem` when none
/// is configured and none was generated before.
pub fn certificate(
    configured: Option<(PathBuf, PathBuf)>,
    data_dir: &Path,
) -> anyhow::Result<(PathBuf, PathBuf, bool)> {
    if let Some((cert, key)) = configured {
        return Ok((cert, key, false));
    }
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = SELF_SIGNED_NAMES
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>();
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key, true))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}
