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
//! Base counts are asked once per city of the matched orders (orders without a city add none;
//! when none has a city, once for every city; the cities spread over the
//! cores), and only for the actors that can be reported (touched ≥ [`MIN_TOUCHED`] matched
//! orders, or named by a canary): the others are dropped whatever their base rate.
//!
//! Invariants: deterministic for the same inputs (cities are visited in order; ties broken by
//! kind and id); every score is finite; base counts lower than what the matched orders alone
//! show (a source answering from another snapshot) are raised to that, never divided by zero.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::index::account_kind;
use super::normalise;
use super::{ActorRef, CanaryHit, MatchError, OrderDetails, RecordSource, Suspect, par_runs};

/// Fewest matched orders an actor must have handled to be reported (fewer is noise: any rider
/// delivers two orders of a 50-row sample now and then).
pub const MIN_TOUCHED: u64 = 3;

/// An actor that may be reported: touched enough matched orders, or named by a canary.
struct Candidate<'a> {
    kind: Cow<'a, str>,
    id: &'a str,
    /// The matched order ids it handled, sorted, distinct.
    ids: Vec<&'a str>,
    canary: bool,
    /// Its orders in the same cities and window.
    base: u64,
}

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
    // An order without a city says nothing about where to count: the known cities are the
    // base, and only when no matched order has a city is it every city.
    let cities: BTreeSet<String> = orders
        .iter()
        .map(|c| normalise::canonical_city(&c.city))
        .filter(|c| !c.is_empty())
        .collect();
    let calls: Vec<Option<&str>> = if cities.is_empty() {
        vec![None]
    } else {
        cities.iter().map(|c| Some(c.as_str())).collect()
    };
    // Matched orders per actor (each order is listed once, so an actor's list only needs
    // deduplicating for accounts that viewed the same order more than once).
    let mut touched: HashMap<(Cow<'_, str>, &str), Vec<&str>> = HashMap::new();
    for c in orders {
        let id = c.order_id.as_str();
        for (kind, actor) in [
            ("merchant", &c.merchant_id),
            ("rider", &c.rider_id),
            ("partner", &c.delivery_partner),
        ] {
            if !actor.is_empty() {
                touched
                    .entry((Cow::Borrowed(kind), actor.as_str()))
                    .or_default()
                    .push(id);
            }
        }
        for e in &c.access {
            if !e.actor_id.is_empty() {
                touched
                    .entry((Cow::Owned(account_kind(&e.actor_kind)), e.actor_id.as_str()))
                    .or_default()
                    .push(id);
            }
        }
    }
    let canary_partners: BTreeSet<&str> = canaries.iter().map(|h| h.partner.as_str()).collect();
    for p in &canary_partners {
        // A canary names its partner even if no other matched order went through it.
        touched.entry((Cow::Borrowed("partner"), *p)).or_default();
    }
    // Only actors that can be reported need a base rate: the rest are dropped whatever it is.
    let mut candidates: Vec<Candidate<'_>> = touched
        .into_iter()
        .filter_map(|((kind, id), mut ids)| {
            ids.sort_unstable();
            ids.dedup();
            let canary = kind == "partner" && canary_partners.contains(id);
            (canary || ids.len() as u64 >= MIN_TOUCHED).then_some(Candidate {
                kind,
                id,
                ids,
                canary,
                base: 0,
            })
        })
        .collect();
    candidates.sort_unstable_by(|a, b| (&a.kind, a.id).cmp(&(&b.kind, b.id)));
    let mut base_total = 0u64;
    if !candidates.is_empty() {
        let only: Vec<ActorRef> = candidates
            .iter()
            .map(|c| ActorRef {
                actor_kind: c.kind.to_string(),
                actor_id: c.id.to_string(),
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
                let key = (a.actor_kind.as_str(), a.actor_id.as_str());
                if let Ok(i) = candidates.binary_search_by(|c| (c.kind.as_ref(), c.id).cmp(&key))
                    && let Some(c) = candidates.get_mut(i)
                {
                    c.base += a.orders;
                }
            }
        }
    }
    let ln_fact = ln_factorials(n);
    let total = base_total.max(n);
    let mut out: Vec<Suspect> = Vec::new();
    for c in candidates {
        let t = c.ids.len() as u64;
        let b = c.base.max(t).max(1);
        let base_share = b as f64 / total as f64;
        let share = t as f64 / n as f64;
        let lift = share / base_share;
        if !c.canary && lift <= 1.0 {
            continue;
        }
        let score = -ln_binomial_tail(n, t, base_share, &ln_fact) / std::f64::consts::LN_10;
        out.push(Suspect {
            actor_kind: c.kind.into_owned(),
            actor_id: c.id.to_string(),
            touched: t,
            share,
            base_share,
            lift,
            orders: c.ids.into_iter().map(str::to_string).collect(),
            score: if score.is_finite() {
                score.max(0.0)
            } else {
                0.0
            },
            canary: c.canary,
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
    use crate::matching::{AccessEvent, ActorCount, BaseCounts, CandidateSet, TokenQuery};
    use std::sync::Mutex;

    /// Base counts from a fixed table; remembers which actors it was asked about.
    struct Table {
        total: u64,
        counts: Vec<(&'static str, &'static str, u64)>,
        asked: Mutex<Vec<(Option<String>, Vec<ActorRef>)>>,
    }

    impl RecordSource for Table {
        fn candidates(&self, _: &TokenQuery) -> Result<CandidateSet<'_>, MatchError> {
            Err(MatchError::Internal("not used".into()))
        }
        fn details(&self, _: &[u64]) -> Result<Vec<OrderDetails>, MatchError> {
            Err(MatchError::Internal("not used".into()))
        }
        fn base_counts(
            &self,
            city: Option<&str>,
            from: i64,
            to: i64,
            only: Option<&[ActorRef]>,
        ) -> Result<BaseCounts, MatchError> {
            let only = only.unwrap_or_default().to_vec();
            let actors = self
                .counts
                .iter()
                .filter(|(k, i, _)| only.iter().any(|a| a.actor_kind == *k && a.actor_id == *i))
                .map(|(k, i, n)| ActorCount {
                    actor_kind: k.to_string(),
                    actor_id: i.to_string(),
                    orders: *n,
                })
                .collect();
            if let Ok(mut asked) = self.asked.lock() {
                asked.push((city.map(str::to_string), only));
            }
            Ok(BaseCounts {
                city: city.map(str::to_string),
                from,
                to,
                total: self.total,
                actors,
            })
        }
    }

    fn order(i: u64, merchant: &str, rider: &str, partner: &str) -> OrderDetails {
        OrderDetails {
            order_ref: i,
            order_id: format!("O{i}"),
            created_at: 1_700_000_000 + i as i64,
            city: "杭州".into(),
            merchant_id: merchant.into(),
            rider_id: rider.into(),
            delivery_partner: partner.into(),
            canary_for: None,
            access: Vec::new(),
        }
    }

    #[test]
    fn only_reportable_actors_are_counted_and_reported() {
        // Rider R1 handled 4 of the 5 orders; merchant M1 two (below the minimum); partner P9
        // one order, but a canary issued to it was among them; staff account S1 viewed one
        // order twice and two more once each (3 distinct orders).
        let mut orders = [
            order(1, "M1", "R1", "P1"),
            order(2, "M1", "R1", "P1"),
            order(3, "M2", "R1", "P1"),
            order(4, "M3", "R1", "P1"),
            order(5, "M4", "R2", "P9"),
        ];
        let view = |at| AccessEvent {
            actor_kind: "staff".into(),
            actor_id: "S1".into(),
            action: "view".into(),
            at,
        };
        orders[0].access = vec![view(1), view(2)];
        orders[1].access = vec![view(3)];
        orders[2].access = vec![view(4)];
        // An order without a city: the base is still the orders of Hangzhou, not of the
        // whole country.
        orders[4].city = String::new();
        let table = Table {
            total: 10_000,
            counts: vec![
                ("rider", "R1", 40),
                ("merchant", "M1", 30),
                ("partner", "P1", 9_000),
                ("partner", "P9", 900),
                ("staff_account", "S1", 20),
            ],
            asked: Mutex::new(Vec::new()),
        };
        let refs: Vec<&OrderDetails> = orders.iter().collect();
        let hits = vec![CanaryHit {
            order_id: "O5".into(),
            partner: "P9".into(),
        }];
        let suspects = attribute(&refs, &hits, &table).expect("attributed");
        let asked = table.asked.lock().expect("lock").clone();
        assert_eq!(
            asked.iter().map(|a| a.0.as_deref()).collect::<Vec<_>>(),
            [Some("杭州")]
        );
        let asked: Vec<(String, String)> = asked
            .into_iter()
            .flat_map(|a| a.1)
            .map(|a| (a.actor_kind, a.actor_id))
            .collect();
        let pair = |k: &str, i: &str| (k.to_string(), i.to_string());
        assert_eq!(
            asked,
            vec![
                pair("partner", "P1"),
                pair("partner", "P9"),
                pair("rider", "R1"),
                pair("staff_account", "S1"),
            ],
            "base counts asked only for actors with enough orders or a canary"
        );
        let lines: Vec<(&str, &str, u64, bool)> = suspects
            .iter()
            .map(|s| {
                (
                    s.actor_kind.as_str(),
                    s.actor_id.as_str(),
                    s.touched,
                    s.canary,
                )
            })
            .collect();
        // P1 handled 4 of 5 matched orders but 90% of all orders: lift below 1, not reported.
        assert_eq!(
            lines,
            vec![
                ("partner", "P9", 1, true),
                ("rider", "R1", 4, false),
                ("staff_account", "S1", 3, false),
            ]
        );
        assert_eq!(suspects[1].orders, vec!["O1", "O2", "O3", "O4"]);
        assert_eq!(suspects[2].orders, vec!["O1", "O2", "O3"]);
        assert!((suspects[1].base_share - 40.0 / 10_000.0).abs() < 1e-12);
        // No matched order with a city: every city is the base.
        for o in &mut orders {
            o.city = String::new();
        }
        let refs: Vec<&OrderDetails> = orders.iter().collect();
        attribute(&refs, &hits, &table).expect("attributed");
        let asked = table.asked.lock().expect("lock").clone();
        assert_eq!(asked.last().map(|a| a.0.clone()), Some(None));
    }

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
