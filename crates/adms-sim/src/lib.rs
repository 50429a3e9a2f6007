//! adms-sim: plays ZKTeco terminals against an adms-bridge server.
//!
//! [`session`] parses the session scripts of `fixtures/README.md` (requests with byte-exact
//! bodies, and the checks on what came back); [`replay`] plays one against a server's base URL
//! over raw HTTP/1.1, as firmware sends it, and reports every step. The `adms-sim` binary
//! (`adms-sim replay PATH… --target URL`) and adms-server's fixture test both use them.
//! [`fleet`] simulates many terminals at once, each living the device cycle (`adms-sim fleet`);
//! [`wire`] is what they write (lines, wall clock, an access panel's registry), which
//! adms-loadgen's drivers write too.

pub mod fleet;
pub mod replay;
pub mod session;
pub mod wire;
