//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the migrations
//! directory, and without this a new file would not be noticed by an incremental build.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
