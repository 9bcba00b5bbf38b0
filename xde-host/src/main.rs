//! `xde-host`: run the xde driver as a Linux process, controlled through
//! a Unix socket (see the library documentation).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use xde_host::{Access, CtlServer, DEFAULT_CTL, new_driver};

/// Run the xde driver as a Linux process. Commands (opteadm) arrive on a
/// Unix socket created mode 0600 (0660 with --group); only root and the
/// members of --group may issue them.
#[derive(Debug, Parser)]
#[command(name = "xde-host", version)]
struct Args {
    /// The control socket's path (opteadm's --ctl or OPTE_CTL).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CTL)]
    ctl: PathBuf,
    /// Also allow the members of this group (the socket becomes 0660,
    /// owned by the group).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let access = match &args.group {
        Some(g) => match Access::with_group(g) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("xde-host: group {g}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Access::root_only(),
    };
    let server = match CtlServer::bind(&args.ctl, access, new_driver()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xde-host: cannot listen on {}: {e}", args.ctl.display());
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "xde-host: listening on {} (API version {})",
        server.path().display(),
        opte_api::API_VERSION
    );
    match server.run(&AtomicBool::new(false)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xde-host: {e}");
            ExitCode::FAILURE
        }
    }
}
