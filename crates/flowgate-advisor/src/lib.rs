//! flowgate's database advisor: what makes a query slow, proven on the database before it
//! is said.
//!
//! - [`complexity`]: a query's complexity, 1 to 10, with its reasons, from its parse tree
//!   (PostgreSQL's dialect; SQL that does not parse is an error with its line and column).
//! - [`candidates`]: the indexes that might serve a query (single, composite, partial,
//!   covering), from the columns its predicates, joins, sorts and groups use.
//! - [`db`]: the database, read-only unless configured as writable: its extensions, the
//!   slow query shapes of `pg_stat_statements`, plans, hypothetical indexes.
//! - [`explained`]: what the plan adds to a query's complexity (large sequential scans,
//!   implicit casts; from a run, sorts on disk and misjudged row counts).
//! - [`existing`]: the indexes already there: unused ones, duplicates, and foreign keys no
//!   index leads with.
//! - [`health`]: the tables' health: dead rows, stale statistics, tables read whole,
//!   transaction-id age, missing primary keys; the vacuums and analyzes that fix them.
//! - [`querylog`]: slow statements from PostgreSQL's own log (stderr, csvlog, jsonlog),
//!   grouped into shapes as `pg_stat_statements` groups them.
//! - [`recommend`]: candidates proven with hypothetical indexes: kept when the planner uses
//!   them and the estimated cost falls by the threshold, best per shape, biggest saving
//!   first.
//! - [`plan`]: the optimization plan (what to create, vacuum, analyze and drop, biggest
//!   saving first) and its steps taken on a writable database, verified.
//! - [`report`]: the reports as JSON, of a query and of a database.

pub mod candidates;
pub mod complexity;
pub mod db;
pub mod existing;
pub mod explained;
pub mod health;
pub mod plan;
pub mod querylog;
pub mod recommend;
pub mod report;

pub use complexity::{Complexity, ParseError, Reason, analyze, parse};
pub use db::{AdvisorError, Database, Shape};
pub use recommend::{Helped, Recommendation, recommend};
