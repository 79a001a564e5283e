//! The `mc` binary: parse, dispatch, map errors to exit codes. Everything else lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    mc::cli::main()
}
