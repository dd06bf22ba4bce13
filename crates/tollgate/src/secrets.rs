//! The sealing key for stored virtual-key values: from the operator, or from a key file that
//! the first start creates; checked against the database so a wrong key stops start-up.

use std::io::Write as _;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tollgate_core::directory::DirectoryStore;
use tollgate_core::vkeys::Sealer;

use crate::config::EncryptionKey;

const KEY_CHECK_SETTING: &str = "encryption_key_check";
const KEY_CHECK_TEXT: &str = "tollgate encryption key check";

/// Loads (or, for a missing key file, creates) the sealing key.
pub fn load_sealer(source: &EncryptionKey) -> Result<Sealer, String> {
    let text = match source {
        EncryptionKey::Given(secret) => secret.expose().to_owned(),
        EncryptionKey::File(path) if path.exists() => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read encryption key file {}: {e}", path.display()))?
        }
        EncryptionKey::File(path) => create_key_file(path)?,
    };
    let bytes = STANDARD.decode(text.trim()).map_err(|_| "the encryption key is not valid base64".to_owned())?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| "the encryption key must be 32 bytes".to_owned())?;
    Ok(Sealer::new(&key))
}

fn create_key_file(path: &Path) -> Result<String, String> {
    let text = STANDARD.encode(Sealer::generate_key());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot create encryption key file {}: {e}", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("cannot write encryption key file {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "created a new encryption key file; back it up with the database");
    Ok(text)
}

/// The first start stores a value sealed with the key; later starts must be able to open it.
pub async fn check_against_store(sealer: &Sealer, store: &dyn DirectoryStore) -> Result<(), String> {
    let fresh_check = sealer.seal(KEY_CHECK_TEXT).map_err(|e| e.to_string())?;
    let stored = store.setting_or_insert(KEY_CHECK_SETTING, &fresh_check).await.map_err(|e| e.to_string())?;
    match sealer.open(&stored) {
        Ok(text) if text.expose() == KEY_CHECK_TEXT => Ok(()),
        _ => Err("the encryption key is not the one this database was first started with; \
                  set TOLLGATE_ENCRYPTION_KEY (or the key file) to the original key"
            .to_owned()),
    }
}
