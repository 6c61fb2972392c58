//! modelc's compiler core. Pure: it takes source text and returns data; only the CLI, the
//! language server and the runtime do I/O.

pub mod autodiff;
pub mod check;
pub mod diag;
pub mod interp;
pub mod ir;
pub mod passes;
pub mod schedule;
pub mod source;
pub mod stdlib;
pub mod syntax;
pub mod train;
