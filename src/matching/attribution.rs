//! Attribution: which link of the chain — merchant, rider, delivery partner, or an account that
//! viewed or exported orders — handled the matched orders far more often than chance explains.
//!
//! For each actor: `touched` = matched orders it handled, `share` = touched / matched,
//! `base_share` = its share of *all* orders in the same cities and time window (from
//! [`RecordSource::base_counts`]), `lift` = share / base_share. Actors with
//! touched ≥ [`MIN_TOUCHED`] and lift > 1 are kept.
//!
//! Ranking: by the binomial tail p = P(X ≥ touched) for X ~ Binomial(matched, base_share), the
//! probability that an actor with this base rate touches this many of the matched orders by
//! chance, reported as score = −log10 p. It beats touched × ln(lift) because it weighs both
//! how many orders and how surprising each is: a busy partner touching 60% of a sample when it
//! handles 30% of the city is less damning than a rider touching 95% when it handles 0.2%.
//! A canary hit names its partner outright and ranks it first whatever the numbers.
//!
//! Base counts are asked once per city of the matched orders (the cities spread over the
//! cores), and only for the actors the matched orders touched.
//!
//! Invariants: deterministic for the same inputs (cities are visited in order; ties broken by
//! kind and id); every score is finite; base counts lower than what the matched orders alone
//! show (a source answering from another snapshot) are raised to that, never divided by zero.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::index::account_kind;
use super::normalise;
use super::{ActorRef, CanaryHit, MatchError, OrderDetails, RecordSource, Suspect, par_runs};

/// Fewest matched orders an actor must have handled to be reported (fewer is noise: any rider
/// delivers two orders of a 50-row sample now and then).
pub const MIN_TOUCHED: u64 = 3;

/// Ranks the actors behind `orders` (the distinct matched orders).
pub fn attribute(
    orders: &[&OrderDetails],
    canaries: &[CanaryHit],
    source: &dyn RecordSource,
) -> Result<Vec<Suspect>, MatchError> {
    let n = orders.len() as u64;
    let (Some(from), Some(to)) = (
        orders.iter().map(|c| c.created_at).min(),
        orders.iter().map(|c| c.created_at).max(),
    ) else {
        return Ok(Vec::new());
    };
    // Base rates over the same cities and window.
    let cities: BTreeSet<String> = orders
        .iter()
        .map(|c| normalise::canonical_city(&c.city))
        .collect();
    let calls: Vec<Option<&str>> = if cities.iter().any(String::is_empty) {
        vec![None]
    } else {
        cities.iter().map(|c| Some(c.as_str())).collect()
    };
    // Matched orders per actor.
    let mut touched: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    for c in orders {
        let mut actors: Vec<(String, String)> = vec![
            ("merchant".into(), c.merchant_id.clone()),
            ("rider".into(), c.rider_id.clone()),
            ("partner".into(), c.delivery_partner.clone()),
        ];
        for e in &c.access {
            actors.push((account_kind(&e.actor_kind), e.actor_id.clone()));
        }
        for a in actors {
            if !a.1.is_empty() {
                touched.entry(a).or_default().insert(c.order_id.as_str());
            }
        }
    }
    let canary_partners: BTreeSet<&str> = canaries.iter().map(|h| h.partner.as_str()).collect();
    for p in &canary_partners {
        // A canary names its partner even if no other matched order went through it.
        touched
            .entry(("partner".into(), (*p).to_string()))
            .or_default();
    }
    // Base counts of the touched actors only (a city has thousands of actors; a sample
    // touches a few).
    let mut base_total = 0u64;
    let mut base = vec![0u64; touched.len()];
    {
        let position: HashMap<(&str, &str), usize> = touched
            .keys()
            .enumerate()
            .map(|(i, (kind, id))| ((kind.as_str(), id.as_str()), i))
            .collect();
        let only: Vec<ActorRef> = touched
            .keys()
            .map(|(kind, id)| ActorRef {
                actor_kind: kind.clone(),
                actor_id: id.clone(),
            })
            .collect();
        // One call per city, the cities spread over the cores.
        let answers = par_runs(&calls, 1, |run| {
            run.iter()
                .map(|city| source.base_counts(*city, from, to, Some(&only)))
                .collect::<Vec<_>>()
        });
        for b in answers.into_iter().flatten() {
            let b = b?;
            base_total += b.total;
            for a in &b.actors {
                if let Some(i) = position.get(&(a.actor_kind.as_str(), a.actor_id.as_str()))
                    && let Some(x) = base.get_mut(*i)
                {
                    *x += a.orders;
                }
            }
        }
    }
    let ln_fact = ln_factorials(n);
    let total = base_total.max(n);
    let mut out: Vec<Suspect> = Vec::new();
    for (((kind, id), ids), base) in touched.into_iter().zip(base) {
        let t = ids.len() as u64;
        let canary = kind == "partner" && canary_partners.contains(id.as_str());
        let b = base.max(t).max(1);
        let base_share = b as f64 / total as f64;
        let share = t as f64 / n as f64;
        let lift = share / base_share;
        if !canary && (t < MIN_TOUCHED || lift <= 1.0) {
            continue;
        }
        let score = -ln_binomial_tail(n, t, base_share, &ln_fact) / std::f64::consts::LN_10;
        out.push(Suspect {
            actor_kind: kind,
            actor_id: id,
            touched: t,
            share,
            base_share,
            lift,
            orders: ids.into_iter().map(str::to_string).collect(),
            score: if score.is_finite() {
                score.max(0.0)
            } else {
                0.0
            },
            canary,
        });
    }
    out.sort_by(|a, b| {
        b.canary
            .cmp(&a.canary)
            .then(b.score.total_cmp(&a.score))
            .then(b.touched.cmp(&a.touched))
            .then(a.actor_kind.cmp(&b.actor_kind))
            .then(a.actor_id.cmp(&b.actor_id))
    });
    Ok(out)
}

/// ln(k!) for k = 0..=n.
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut v = Vec::with_capacity(n as usize + 1);
    let mut acc = 0.0f64;
    v.push(0.0);
    for k in 1..=n {
        acc += (k as f64).ln();
        v.push(acc);
    }
    v
}

/// ln P(X ≥ t) for X ~ Binomial(n, p), summed in log space so tiny tails stay finite.
fn ln_binomial_tail(n: u64, t: u64, p: f64, ln_fact: &[f64]) -> f64 {
    if t == 0 || p >= 1.0 {
        return 0.0;
    }
    if p <= 0.0 || t > n {
        return f64::NEG_INFINITY;
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let lf = |k: u64| ln_fact.get(k as usize).copied().unwrap_or(0.0);
    // The terms rise to the mode and fall after it. Once one is more than 800 below the
    // largest so far it is past the mode, and it and every later term give exp(x − max) = 0.0
    // exactly (exp underflows below −745): they would add nothing, so they are not computed.
    // The sum is the same, bit for bit, as over all n − t + 1 terms, at a fraction of the cost
    // for the small base shares of most actors.
    let mut terms: Vec<f64> = Vec::new();
    let mut max = f64::NEG_INFINITY;
    for k in t..=n {
        let x = lf(n) - lf(k) - lf(n - k) + k as f64 * lp + (n - k) as f64 * lq;
        if x < max - 800.0 {
            break;
        }
        max = f64::max(max, x);
        terms.push(x);
    }
    let sum: f64 = terms.iter().map(|x| (x - max).exp()).sum();
    (max + sum.ln()).min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail() {
        let lf = ln_factorials(10);
        // P(X >= 1) for Bin(10, 0.5) = 1 - 2^-10.
        let p = ln_binomial_tail(10, 1, 0.5, &lf).exp();
        assert!((p - (1.0 - 1.0 / 1024.0)).abs() < 1e-12);
        // P(X >= 10) = 2^-10.
        let p = ln_binomial_tail(10, 10, 0.5, &lf).exp();
        assert!((p - 1.0 / 1024.0).abs() < 1e-12);
        let lf = ln_factorials(5000);
        assert!(ln_binomial_tail(5000, 5000, 1e-6, &lf).is_finite());
        // Cutting the sum where its terms underflow changes no bit of the result.
        let full = |n: u64, t: u64, p: f64| {
            let (lp, lq) = (p.ln(), (-p).ln_1p());
            let terms: Vec<f64> = (t..=n)
                .map(|k| {
                    lf[n as usize] - lf[k as usize] - lf[(n - k) as usize]
                        + k as f64 * lp
                        + (n - k) as f64 * lq
                })
                .collect();
            let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = terms.iter().map(|x| (x - max).exp()).sum();
            (max + sum.ln()).min(0.0)
        };
        for (n, t, p) in [
            (2460, 3, 1e-4),
            (2460, 40, 1e-4),
            (2460, 2191, 0.0012),
            (5000, 1, 0.5),
            (5000, 2600, 0.5),
            (5000, 10, 0.3),
            (300, 150, 0.999),
            (4000, 3999, 1e-9),
        ] {
            assert_eq!(
                ln_binomial_tail(n, t, p, &lf).to_bits(),
                full(n, t, p).to_bits(),
                "{n} {t} {p}"
            );
        }
    }
}
