//! `raise_open_file_limit` lifts the soft limit on open files to the hard
//! one. Its own test binary: it changes the whole process's limit.

use rlimit::Resource;

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = Resource::NOFILE.get().unwrap();
    // Start from a low soft limit, as under a shell's default of 1024.
    let low = hard.min(256);
    Resource::NOFILE.set(low, hard).unwrap();
    assert_eq!(Resource::NOFILE.get().unwrap().0, low);

    common::cli::raise_open_file_limit();

    let (soft, after_hard) = Resource::NOFILE.get().unwrap();
    assert_eq!(after_hard, hard);
    assert_eq!(soft, hard, "the soft limit is raised to the hard limit");
}
