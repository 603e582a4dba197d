//! Authorization: from a verified request to a verdict. The [`Decider`]
//! asks the policy and holds its answer to the operator's [`GrantRules`];
//! the [`Verdict`] and its typed [`DenyReason`] are what the rest of the host
//! signs, logs and counts.

mod ceiling;
mod decide;
mod decision;
pub(crate) mod rules;

pub use ceiling::Ceiling;
pub use decide::Decider;
pub(crate) use decision::mask_credentials;
pub use decision::{DECISION_LOG, DecisionRecord, DenyReason, NAME_BYTES, Verdict};
pub use rules::{Accounts, CheckedGrant, GrantRules, RuleRefusal};
