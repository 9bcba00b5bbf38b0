//! The committed man page `opteadm.8` is the one the CLI definition
//! generates. `cargo xtask man` (or `OPTEADM_WRITE_MAN=1` with this test)
//! rewrites it.

use std::path::PathBuf;

#[test]
fn man_page_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("opteadm.8");
    let page = opteadm::man_page();
    if std::env::var_os("OPTEADM_WRITE_MAN").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(committed == page, "{} is stale: run `cargo xtask man` and commit it", path.display());
    let text = String::from_utf8(page).unwrap();
    // Every subcommand is documented.
    for sub in opteadm::command().get_subcommands() {
        let name = sub.get_name().replace('-', "\\-");
        assert!(text.contains(&format!(".SS \"opteadm {name}")), "{name} missing");
    }
    assert!(
        text.starts_with(".ie \\n(.g .ds Aq \\(aq") || text.contains(".TH opteadm 8"),
        "{}",
        &text[..200]
    );
}
