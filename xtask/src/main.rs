//! `cargo xtask`: the project's entry points that are more than one
//! cargo command.
//!
//! - `cargo xtask test`: the whole pass/fail suite (what CI runs): format,
//!   lints, every test, the kernel-target build of the kernel-reachable
//!   crates, and a build (not a run) of the fuzz targets and benchmarks.
//! - `cargo xtask fuzz TARGET --seconds N`: run one cargo-fuzz target for N
//!   seconds on the nightly toolchain.
//! - `cargo xtask kernel-check`: only the kernel-target build.
//! - `cargo xtask man`: regenerate `opteadm/opteadm.8` from the CLI
//!   definition (a test fails while the committed page is stale).
//! - `cargo xtask demo [ARGS]`: run the offline simulator (`opte-sim`) on
//!   the worked example (`examples/two-hosts.json`) and print what
//!   happens to each packet; ARGS go to `opte-sim` (`--json`, `--out DIR`).
//!
//! Standard library only: it must run before anything else builds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Crates that are compiled into the illumos kernel module: they must
/// build for the kernel target with only `core` and `alloc`.
const KERNEL_CRATES: &[&str] = &["illumos-sys-hdrs", "opte-api", "opte", "oxide-vpc", "xde"];

/// The kernel target spec, relative to the workspace root.
const KERNEL_TARGET_SPEC: &str = "targets/x86_64-unknown-illumos-kernel.json";

/// Rustup components the build needs (also listed in rust-toolchain.toml).
const COMPONENTS: &[&str] = &["rustfmt", "clippy", "rust-src"];

/// Rustup targets the build needs.
const TARGETS: &[&str] = &["x86_64-unknown-illumos"];

/// The cargo-fuzz workspace, relative to the workspace root.
const FUZZ_DIR: &str = "fuzz";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("kernel-check") => ensure_toolchain().and_then(|()| kernel_check()),
        Some("man") => run(
            "regenerate opteadm/opteadm.8",
            cargo().env("OPTEADM_WRITE_MAN", "1").args(["test", "-p", "opteadm", "--test", "man"]),
        ),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask test | fuzz TARGET [--seconds N] | kernel-check | demo [OPTE-SIM ARGS] | man"
        .to_string()
}

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    c.current_dir(workspace_root());
    c
}

/// Run a command, naming it in the error when it fails.
fn run(step: &str, cmd: &mut Command) -> Result<()> {
    let start = Instant::now();
    eprintln!("xtask: == {step}");
    let status = cmd.status().map_err(|e| format!("{step}: could not start: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if status.success() {
        eprintln!("xtask: == {step}: ok ({secs:.1}s)");
        Ok(())
    } else {
        Err(format!("{step}: failed ({status}) after {secs:.1}s"))
    }
}

fn rustup_list(args: &[&str]) -> Result<Vec<String>> {
    let out = Command::new("rustup")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("rustup: could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rustup {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

/// Add missing rustup components and targets of the pinned toolchain
/// (rustup itself won't: RUSTUP_AUTO_INSTALL=0 on our machines).
fn ensure_toolchain() -> Result<()> {
    let installed = rustup_list(&["component", "list", "--installed"])?;
    let missing: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|c| !installed.iter().any(|i| i == c || i.starts_with(&format!("{c}-"))))
        .collect();
    if !missing.is_empty() {
        let mut cmd = Command::new("rustup");
        cmd.current_dir(workspace_root()).args(["component", "add"]).args(&missing);
        run(&format!("rustup component add {}", missing.join(" ")), &mut cmd)?;
    }
    let targets = rustup_list(&["target", "list", "--installed"])?;
    let missing: Vec<&str> =
        TARGETS.iter().copied().filter(|t| !targets.iter().any(|i| i == t)).collect();
    if !missing.is_empty() {
        let mut cmd = Command::new("rustup");
        cmd.current_dir(workspace_root()).args(["target", "add"]).args(&missing);
        run(&format!("rustup target add {}", missing.join(" ")), &mut cmd)?;
    }
    Ok(())
}

fn test() -> Result<()> {
    let start = Instant::now();
    ensure_toolchain()?;
    let fuzz_manifest = format!("{FUZZ_DIR}/Cargo.toml");

    run("cargo fmt --check", cargo().args(["fmt", "--all", "--check"]))?;
    run(
        "cargo fmt --check (fuzz)",
        cargo().args(["fmt", "--all", "--check", "--manifest-path", &fuzz_manifest]),
    )?;
    run(
        "cargo clippy",
        cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
    )?;
    run("cargo test", cargo().args(["test", "--workspace"]))?;
    kernel_check()?;
    // The userland crates' illumos-only code (the /dev/xde ioctl path):
    // type-checked only, since nothing here can run it.
    run(
        "illumos userland check (opte-ioctl, opteadm)",
        cargo().args([
            "check",
            "--target",
            "x86_64-unknown-illumos",
            "-p",
            "opte-ioctl",
            "-p",
            "opteadm",
        ]),
    )?;
    run("cargo bench --no-run", cargo().args(["bench", "--workspace", "--no-run"]))?;
    // The fuzz targets build on stable too (libfuzzer-sys links libFuzzer
    // without sanitizer coverage); `cargo xtask fuzz` runs them on nightly.
    run(
        "fuzz targets: clippy",
        cargo().args([
            "clippy",
            "--manifest-path",
            &fuzz_manifest,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "fuzz targets: build",
        cargo().args(["build", "--manifest-path", &fuzz_manifest, "--bins"]),
    )?;
    eprintln!("xtask: all checks passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Build the kernel-reachable crates for the kernel target with only
/// `core` and `alloc`: any use of `std` fails here, and so does any
/// warning in our crates (code that only the kernel build compiles has
/// no other check).
fn kernel_check() -> Result<()> {
    const STEP: &str = "kernel target build (core+alloc only)";
    let spec = workspace_root().join(KERNEL_TARGET_SPEC);
    let mut cmd = cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .args(["build", "--release", "-Z", "build-std=core,alloc", "-Z", "json-target-spec"])
        // As the driver builds them: without userland-only features.
        .arg("--no-default-features")
        .args(["--message-format", "short"])
        .arg("--target")
        .arg(&spec);
    for c in KERNEL_CRATES {
        cmd.args(["-p", c]);
    }
    let start = Instant::now();
    eprintln!("xtask: == {STEP}");
    let out = cmd.output().map_err(|e| format!("{STEP}: could not start: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    if !out.status.success() {
        return Err(format!("{STEP}: failed ({})", out.status));
    }
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("warning") && KERNEL_CRATES.iter().any(|c| l.starts_with(&format!("{c}/")))
        })
        .collect();
    if !ours.is_empty() {
        return Err(format!(
            "{STEP}: {} warning(s) in kernel crates:\n{}",
            ours.len(),
            ours.join("\n")
        ));
    }
    eprintln!("xtask: == {STEP}: ok ({:.1}s)", start.elapsed().as_secs_f64());
    Ok(())
}

/// The simulator's worked example, relative to the workspace root.
const DEMO_CONFIG: &str = "examples/two-hosts.json";

/// Run `opte-sim` on the worked example: two hosts, a guest on each in
/// one VPC, a guest in a peered VPC, the internet through a boundary,
/// and a packet for each path. Extra arguments go to the simulator.
fn demo(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "opte-sim", "--", DEMO_CONFIG]).args(args);
    let status = cmd.status().map_err(|e| format!("demo: could not start cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("demo: opte-sim failed ({status})")) }
}

fn fuzz(args: &[String]) -> Result<()> {
    let mut target = None;
    let mut seconds: u64 = 60;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                seconds = v.parse().map_err(|_| format!("--seconds: '{v}' is not a number"))?;
            }
            t if target.is_none() && !t.starts_with('-') => target = Some(t.to_string()),
            other => return Err(format!("fuzz: unexpected argument '{other}'; {}", usage())),
        }
    }
    let target = target.ok_or_else(usage)?;
    let have_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_fuzz {
        return Err("cargo-fuzz on the nightly toolchain is needed: \
                    `rustup toolchain install nightly --profile minimal` and \
                    `cargo install cargo-fuzz`"
            .to_string());
    }
    // Run through rustup's `cargo`, not the pinned one, so `+nightly` applies.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", FUZZ_DIR, &target, "--"])
        .arg(format!("-max_total_time={seconds}"));
    run(&format!("fuzz {target} for {seconds}s"), &mut cmd)
}
