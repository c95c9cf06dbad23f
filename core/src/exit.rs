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

/// How a binary ends on `result`: status 0, or the error printed as `main` returning it would print
/// it (with its causes) and the status its chain says.
pub fn report<E>(result: Result<(), E>) -> std::process::ExitCode
where
    E: fmt::Debug + std::ops::Deref<Target = dyn Error + Send + Sync + 'static>,
{
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            let first: &(dyn Error + 'static) = &*e;
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
}
