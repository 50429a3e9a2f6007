//! `sqlx::migrate!` embeds the migrations at compile time, but a proc macro cannot tell Cargo
//! which files it read (on stable Rust): without this, adding a migration would not rebuild the
//! crate and the binary would silently lack it.
fn main() {
    println!("cargo::rerun-if-changed=../../migrations/sqlite");
    println!("cargo::rerun-if-changed=../../migrations/postgres");
}
