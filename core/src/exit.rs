//! How every xenprov binary ends. Its exit status says which kind of failure it was, so that a script
//! can tell a typo in an answer file from a disk that holds data from a tool that broke:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | failed: something that was started went wrong (a tool, a read or write, the network) |
//! | 2 | usage: the command line itself is wrong (clap's own status) |
//! | 3 | invalid input: a file given (answer file, guest definition, settings) does not read; every problem is listed, and nothing was written |
//! | 4 | refused: the input reads, but doing it here would overwrite data, break a running guest, or was declined; nothing was written |

use std::error::Error;
use std::fmt;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const INVALID: u8 = 3;
pub const REFUSED: u8 = 4;

/// The statuses as each binary's `--help` and man page list them.
pub const HELP: &str = "Exit status: 0 done; 1 failed; 2 usage error; 3 invalid input (every problem listed, \
                        nothing written); 4 refused (would overwrite data or break a running guest, or \
                        declined; nothing written).";

/// An error that ends the program with `INVALID` or `REFUSED` instead of `FAILED`.
#[derive(Debug)]
pub struct Status {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Status {}

/// An input that does not read.
pub fn invalid(message: impl Into<String>) -> Status {
    Status {
        code: INVALID,
        message: message.into(),
    }
}

/// A valid request that is not carried out here.
pub fn refused(message: impl Into<String>) -> Status {
    Status {
        code: REFUSED,
        message: message.into(),
    }
}

/// The exit status of an error: that of the outermost `Status` in its chain of causes, else `FAILED`.
pub fn code_of<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> u8 {
    chain
        .into_iter()
        .find_map(|e| e.downcast_ref::<Status>().map(|s| s.code))
        .unwrap_or(FAILED)
}

/// What a verb returns when it succeeds: nothing (status 0), or a status of its own (`validate`
/// reports problems with 3 after listing them itself).
pub trait Success {
    fn code(self) -> std::process::ExitCode;
}

impl Success for () {
    fn code(self) -> std::process::ExitCode {
        std::process::ExitCode::SUCCESS
    }
}

impl Success for std::process::ExitCode {
    fn code(self) -> std::process::ExitCode {
        self
    }
}

/// An error with its causes on one line, outermost first: `error: installing the packages: dpkg
/// failed (exit status: 1)`, as it goes to a terminal, a log file or the journal.
pub fn message(e: &(dyn Error + 'static)) -> String {
    std::iter::successors(Some(e), |&e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// How every binary ends on `result`: its success's status, or the error printed on one line with
/// its causes (`message`) and the status its chain says.
pub fn report<T, E>(result: Result<T, E>) -> std::process::ExitCode
where
    T: Success,
    E: std::ops::Deref<Target = dyn Error + Send + Sync + 'static>,
{
    match result {
        Ok(done) => done.code(),
        Err(e) => {
            let first: &(dyn Error + 'static) = &*e;
            eprintln!("error: {}", message(first));
            let chain = std::iter::successors(Some(first), |&e| e.source());
            std::process::ExitCode::from(code_of(chain))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(Box<dyn Error + 'static>);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("while doing it")
        }
    }
    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn chain<'a>(e: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
        std::iter::successors(Some(e), |&e| e.source()).collect()
    }

    #[test]
    fn the_status_of_a_cause_decides_else_failed() {
        let e = Wrapped(Box::new(refused("disk /dev/vda holds data")));
        assert_eq!(code_of(chain(&e)), REFUSED);
        assert_eq!(code_of(chain(&invalid("line 3"))), INVALID);
        let io = std::io::Error::other("disk gone");
        assert_eq!(code_of(chain(&Wrapped(Box::new(io)))), FAILED);
    }

    #[test]
    fn the_message_holds_every_cause_on_one_line() {
        let e = Wrapped(Box::new(refused("disk /dev/vda holds data")));
        assert_eq!(message(&e), "while doing it: disk /dev/vda holds data");
        assert_eq!(message(&invalid("line 3")), "line 3");
    }
}
