//! `sip-blf-sync`: carry PBX line state (SIP BLF) into Microsoft Teams presence.

fn main() {
    println!("sip-blf-sync {}", env!("CARGO_PKG_VERSION"));
}
