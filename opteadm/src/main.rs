//! `opteadm`: configure and inspect opte ports (see the library).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <opteadm::cli::Cli as clap::Parser>::parse();
    let mut out = std::io::stdout().lock();
    let mut input = std::io::stdin().lock();
    match opteadm::run(cli, &mut out, &mut input) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("opteadm: {msg}");
            ExitCode::FAILURE
        }
    }
}
