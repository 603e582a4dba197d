//! Tools for policy authors, offline: `check` evaluates one request,
//! `check --kit` runs a conformance kit, `componentize` turns a Go module
//! into a policy component, `new` writes a policy project to start from. They decide through the same [`Decider`] and
//! [`Binding`] as `serve`.
//!
//! [`Decider`]: crate::authz::Decider
//! [`Binding`]: crate::serve::Binding

pub(crate) mod check;
pub(crate) mod componentize;
pub(crate) mod kit;
pub(crate) mod scaffold;
