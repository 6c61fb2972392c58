//! Syntax: the grammar, the AST, and the parser that builds one from the other.

pub mod ast;
pub mod parser;
pub mod prescan;
pub mod print;

pub use parser::parse_file;
