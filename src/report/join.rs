//! The join rule: each customer's latest decision, labelled by the outcome that names it, else by the customer's
//! first churned/retained outcome at or after it.

use std::collections::HashMap;

use super::read::{Decision, Outcome};

/// A customer's latest decision and what happened after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The customer.
    pub customer_id: String,
    /// The model's score.
    pub score: f64,
    /// The action chosen, if any.
    pub action: Option<String>,
    /// Churned (true), retained (false), or not known yet.
    pub label: Option<bool>,
}

/// Each customer's latest decision (by `decided_at`, ties broken by the larger decision id so the choice does not
/// depend on file order), in customer order.
pub fn latest_per_customer(decisions: Vec<Decision>) -> Vec<Decision> {
    let mut latest: HashMap<String, Decision> = HashMap::with_capacity(decisions.len());
    for decision in decisions {
        match latest.get_mut(&decision.customer_id) {
            Some(kept) => {
                if (decision.decided_at, &decision.decision_id)
                    > (kept.decided_at, &kept.decision_id)
                {
                    *kept = decision;
                }
            }
            None => {
                latest.insert(decision.customer_id.clone(), decision);
            }
        }
    }
    let mut latest: Vec<Decision> = latest.into_values().collect();
    latest.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    latest
}

/// The order in which outcomes count: first occurred, then first recorded, then event id.
fn order_key(o: &Outcome) -> (i64, i64, &str) {
    (o.occurred_at, o.recorded_at, &o.event_id)
}

/// Labels each decision by the join rule.
pub fn label(latest: Vec<Decision>, outcomes: &[Outcome]) -> Vec<Scored> {
    let mut by_decision: HashMap<&str, &Outcome> = HashMap::new();
    let mut by_customer: HashMap<&str, Vec<&Outcome>> = HashMap::new();
    for outcome in outcomes {
        if let Some(id) = outcome.decision_id.as_deref() {
            let entry = by_decision.entry(id).or_insert(outcome);
            if order_key(outcome) < order_key(entry) {
                *entry = outcome;
            }
        }
        by_customer
            .entry(outcome.customer_id.as_str())
            .or_default()
            .push(outcome);
    }
    for list in by_customer.values_mut() {
        list.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    }
    latest
        .into_iter()
        .map(|decision| {
            let named = by_decision.get(decision.decision_id.as_str()).copied();
            let after = || {
                let list = by_customer.get(decision.customer_id.as_str())?;
                let first = list.partition_point(|o| o.occurred_at < decision.decided_at);
                list.get(first).copied()
            };
            let label = named.or_else(after).map(|o| o.churned);
            Scored {
                customer_id: decision.customer_id,
                score: decision.score,
                action: decision.action,
                label,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(id: &str, customer: &str, at: i64, score: f64) -> Decision {
        Decision {
            decision_id: id.into(),
            customer_id: customer.into(),
            decided_at: at,
            score,
            action: None,
        }
    }

    fn outcome(
        event: &str,
        customer: &str,
        decision: Option<&str>,
        churned: bool,
        at: i64,
    ) -> Outcome {
        Outcome {
            event_id: event.into(),
            customer_id: customer.into(),
            decision_id: decision.map(Into::into),
            churned,
            occurred_at: at,
            recorded_at: at + 1,
        }
    }

    #[test]
    fn the_latest_decision_per_customer_wins_ties_by_id() {
        let latest = latest_per_customer(vec![
            decision("d1", "b", 10, 0.1),
            decision("d2", "b", 20, 0.2),
            decision("d3", "a", 5, 0.3),
            decision("d5", "c", 7, 0.5),
            decision("d4", "c", 7, 0.4),
        ]);
        let ids: Vec<&str> = latest.iter().map(|d| d.decision_id.as_str()).collect();
        assert_eq!(ids, ["d3", "d2", "d5"]);
    }

    #[test]
    fn named_outcome_first_then_the_customers_first_after() {
        let latest = vec![
            decision("d1", "a", 100, 0.9),
            decision("d2", "b", 100, 0.2),
            decision("d3", "c", 100, 0.5),
            decision("d4", "d", 100, 0.6),
        ];
        let outcomes = vec![
            // a: named retained beats an earlier unnamed churned.
            outcome("e1", "a", None, true, 150),
            outcome("e2", "a", Some("d1"), false, 200),
            // b: outcomes before the decision do not count; the first at or after it does.
            outcome("e3", "b", None, true, 99),
            outcome("e5", "b", Some("old"), false, 300),
            outcome("e4", "b", None, true, 100),
            // c: only before the decision: unlabelled. d: none.
            outcome("e6", "c", None, true, 50),
        ];
        let labels: Vec<Option<bool>> = label(latest, &outcomes).iter().map(|s| s.label).collect();
        assert_eq!(labels, [Some(false), Some(true), None, None]);
    }

    #[test]
    fn of_two_outcomes_naming_a_decision_the_first_counts() {
        let outcomes = vec![
            outcome("e2", "a", Some("d1"), false, 200),
            outcome("e1", "a", Some("d1"), true, 150),
        ];
        let scored = label(vec![decision("d1", "a", 100, 0.9)], &outcomes);
        assert_eq!(scored[0].label, Some(true));
    }
}
