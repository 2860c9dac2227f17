//! Where the storefront's files are, for the balancer to serve: the
//! repository's `storefront/public`, found from this executable's place
//! (`target/<profile>/launcher` lies inside the repository), else from the
//! workspace this launcher was built from, else the working directory.

use std::path::{Path, PathBuf};

const RELATIVE: &str = "storefront/public";

/// The first candidate that is a directory, as an absolute path.
pub fn locate(exe: Option<&Path>) -> Option<PathBuf> {
    let from_exe = exe
        .and_then(Path::parent)
        .into_iter()
        .flat_map(Path::ancestors)
        .map(|dir| dir.join(RELATIVE));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(RELATIVE);
    let cwd = std::env::current_dir().ok().map(|d| d.join(RELATIVE));
    from_exe
        .chain(std::iter::once(workspace))
        .chain(cwd)
        .find(|dir| dir.is_dir())
        .and_then(|dir| dir.canonicalize().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_above_the_executable() {
        let repo = tempfile::tempdir().unwrap();
        let public = repo.path().join(RELATIVE);
        std::fs::create_dir_all(&public).unwrap();
        let exe = repo.path().join("target/release/launcher");
        assert_eq!(
            locate(Some(&exe)),
            Some(public.canonicalize().unwrap()),
            "target/release/launcher finds the repository's storefront"
        );
    }

    #[test]
    fn else_the_workspace_it_was_built_from() {
        let elsewhere = tempfile::tempdir().unwrap();
        let exe = elsewhere.path().join("bin/launcher");
        let want = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(RELATIVE)
            .canonicalize()
            .unwrap();
        assert_eq!(locate(Some(&exe)), Some(want));
    }
}
