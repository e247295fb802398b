//! Proactive engagement: the policy that turns scores, reasons and segments into a next best action.

pub mod check;
pub mod insights;
pub mod policy;

pub use policy::{
    Action, Decision, Facts, OfferFilter, OfferSource, Policy, PolicyError, PolicyStatus,
    PolicyStore, Vocabulary,
};
