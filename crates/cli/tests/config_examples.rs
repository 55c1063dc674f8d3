//! The example configuration files shipped in `config/` must load as they are.

use std::path::Path;

fn config(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name)
}

#[test]
fn example_extension_lists_load() {
    let json = sip_blf_sync::extensions::load(&config("extensions.example.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json.len(), 5);
    assert_eq!(json[2].user(), "0b8f8e3a-5c4d-4e6f-9a1b-2c3d4e5f6a7b");
    assert_eq!(
        json[4].event,
        sip_blf_sync::extensions::EventPackage::DialogAndPresence
    );
    let csv = sip_blf_sync::extensions::load(&config("extensions.example.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(csv.len(), 2);
    assert_eq!(csv[0].email, "user1@contoso.com");
}
