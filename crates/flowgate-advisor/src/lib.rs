//! flowgate's database advisor: what makes a query slow, proven on the database before it
//! is said.
//!
//! - [`complexity`]: a query's complexity, 1 to 10, with its reasons, from its parse tree
//!   (PostgreSQL's dialect; SQL that does not parse is an error with its line and column).
//! - [`db`]: the database, read-only unless configured as writable: its extensions, the
//!   slow query shapes of `pg_stat_statements`, plans.

pub mod complexity;
pub mod db;

pub use complexity::{Complexity, ParseError, Reason, analyze, parse};
pub use db::{AdvisorError, Database, Shape};
