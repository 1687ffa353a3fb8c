//! What the admin API makes beside the config's (budgets, alert rules): why a change was
//! refused. The admin API answers each the same way (`admin::reply::refused`).

/// Why a thing cannot be set or removed through the API.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The config sets one of that name.
    InConfig,
    /// Not valid: the problems, each with its key.
    Invalid(Vec<(String, String)>),
    NotFound,
    Store(String),
}
