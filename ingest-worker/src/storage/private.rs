//! Owner-only files and folders for the `file://` key store.
//!
//! Key objects are the secret half of the encryption: whoever reads one decrypts its key
//! period. In a `file://` store they are written `0600` in folders that are `0700` all the way
//! up to the store's root, whatever the process umask, so other local users (a web server
//! serving the media folder, say) can read neither the keys nor the names of the streams
//! that have them. `object_store`'s `LocalFileSystem` stages a PUT as a file of umask mode
//! next to its destination and renames it into place; inside a `0700` folder that staged file
//! is out of other users' reach too, and the file is narrowed to `0600` right after.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of key files.
const FILE_MODE: u32 = 0o600;
/// Mode of every folder of the key store.
const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) owner-only, and narrows `dir` itself to `0700` when it
/// already existed with a wider mode (a store first opened by an older worker).
pub fn create_root(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Prepares the folders of `file`, an object path under `root`: every folder between `root`
/// and `file` exists and is `0700`.
pub fn prepare_parents(root: &Path, file: &Path) -> io::Result<()> {
    let Some(parent) = file.parent() else {
        return Ok(());
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(parent)?;
    for dir in parent.ancestors().take_while(|dir| dir.starts_with(root)) {
        narrow(dir, DIR_MODE)?;
    }
    Ok(())
}

/// Narrows a just-written key file to `0600`.
pub fn seal_file(file: &Path) -> io::Result<()> {
    std::fs::set_permissions(file, Permissions::from_mode(FILE_MODE))
}

/// Sets `mode` on `path` unless it already has it (one `stat` for folders that are right).
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn key_folders_are_owner_only_up_to_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("keys-store");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::set_permissions(&root, Permissions::from_mode(0o755)).expect("chmod");
        create_root(&root).expect("root");
        assert_eq!(mode(&root), 0o700);
        let file = root.join("keys/benw/1.key");
        prepare_parents(&root, &file).expect("parents");
        std::fs::write(&file, [0u8; 16]).expect("write");
        seal_file(&file).expect("seal");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&root.join("keys/benw")), 0o700);
        assert_eq!(mode(&root.join("keys")), 0o700);
        // The folder above the store is not the store's to change.
        assert_ne!(mode(dir.path()) & 0o777, 0);
    }
}
