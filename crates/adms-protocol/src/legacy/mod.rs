//! The hand-written parsers that the nom grammars replaced, kept verbatim (as of `2028e2c`, the
//! last commit before the nom codec) for one purpose: the differential test
//! (`tests/it/differential.rs`) runs them beside the new parsers on the same bytes and requires
//! identical output, and the A/B groups of the `attlog` bench time ATTLOG and OPERLOG against
//! them. Nothing else may call them; they go when that comparison is no longer wanted.

pub mod attlog;
pub mod attphoto;
pub mod devicecmd;
pub mod info;
pub mod operlog;
pub mod options;

mod kv;
