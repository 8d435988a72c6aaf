//! Which counters one request reserves on and changes: its [`Tally`].

use std::sync::Arc;

use crate::catalog::{Action, Overage};
use crate::decision::{active_grants, Terms};
use crate::store::{Counter, Hold, Line, ReservationId, Seed, Spill};
use crate::subscriber::{Subscriber, Usage};

/// The id of the grant counter on which a pool's overage is counted: `$` starts no grant id of
/// a record.
pub(crate) const OVERAGE_GRANT: &str = "$overage";

/// The counter of `user`'s units past the allowance and the grants of `pool` (give it the
/// pool's period).
pub(crate) fn overage_counter(user: &Arc<str>, pool: &Arc<str>) -> Counter {
    Counter::grant(Arc::clone(user), pool, OVERAGE_GRANT)
}

/// What one counted request does to the counters.
#[derive(Debug)]
pub(crate) struct Tally {
    /// What the request reserves before the call, line by line: its action's counter (or its
    /// resource's items), then the credit pool it draws from. Built once, under a fresh id:
    /// the store reserves it as it is and the response settles the same one. Without lines
    /// it reserves nothing.
    pub(crate) hold: Hold,
    /// Which line is the action's, and which the pool's.
    pub(crate) action_line: Option<usize>,
    pub(crate) pool_line: Option<usize>,
    /// The line whose units the handler reports after the call, if it does.
    pub(crate) reported_line: Option<usize>,
    /// The item counter that a success changes without a reservation (a delete gives one
    /// back; a create under a quota adds one), by how much, and where it starts.
    pub(crate) items: Option<(Counter, i64, Seed)>,
    /// The usage an allowed request reports when it reserves nothing on its action (a delete
    /// without a finite limit, an unlimited action drawing credits): the record's, as without
    /// counting.
    pub(crate) unreserved_usage: u64,
}

impl Tally {
    /// What `action` (already normalised) on `resource` counts under `terms` (the limit the
    /// decision compares with: the plan's raised by the active add-ons), or `None` when the
    /// request is not counted: an action other than create and delete without a finite limit,
    /// that draws no credits.
    ///
    /// A create reserves on the resource's item count, whatever its limit, so that the count is
    /// right when the user changes plans; a delete gives one item back on success and, under a
    /// finite `delete` limit, also reserves on the delete count; any other action with a finite
    /// limit reserves on its own count (a `PATCH` limited by the `update` limit on the count it
    /// is compared with: the patch count when the record has one, else the update count). A
    /// metered request takes its cost there, unless it draws from a credit pool: then it takes
    /// one unit there and its cost on the pool's counter (of the pool's period), topped up by
    /// the user's active grants ([`active_grants`]).
    ///
    /// Under a quota the reservation is on the period's counter of the action instead, which
    /// starts at 0: a create counts creates in the period (and still adds one to the item count
    /// on success), and a delete gives nothing back to it.
    ///
    /// Seeds come from the record, read as the decision reads it: a counter starts at what the
    /// record gives its action. An action of a resource the record counts plainly (or not at
    /// all) that has no count of its own reads the plain count, which is the item count: its
    /// counter follows the item counter until it exists ([`Seed::Items`]).
    pub(crate) fn of(
        terms: &Terms<'_>,
        subscriber: Option<&Subscriber>,
        now_ms: u64,
        user: &Arc<str>,
        resource: &Arc<str>,
        action: &Action,
    ) -> Option<Self> {
        let usage = subscriber.map(|subscriber| &subscriber.usage);
        // A finite limit is counted (also a soft one without end, to flag its overage); the
        // reservation refuses only past the overage.
        let finite = terms.limit.maximum();
        let hard = terms.hard_maximum();
        let window = terms.window;
        let seed = |counted: &Action| seed(usage, resource, counted);
        let items = || Counter::items(Arc::clone(user), resource);
        let per_action = |counted: Action| {
            // A period's counter starts from nothing.
            let start = match window {
                Some(_) => Seed::Count(0),
                None => seed(&counted),
            };
            let mut counter = Counter::action(Arc::clone(user), resource, counted);
            counter.period = window;
            (counter, hard, start)
        };
        let (reserve, items, unreserved_usage) = match (action, finite, window) {
            (Action::Create, Some(_), Some(_)) => (
                Some(per_action(Action::Create)),
                Some((items(), 1, seed(&Action::Create))),
                0,
            ),
            (Action::Create, _, _) => (Some((items(), hard, seed(&Action::Create))), None, 0),
            (Action::Delete, _, _) => (
                finite.map(|_| per_action(Action::Delete)),
                Some((items(), -1, seed(&Action::Create))),
                // Read when nothing is reserved on the action: no finite delete limit.
                usage.map_or(0, |usage| usage.get(resource, &Action::Delete)),
            ),
            (_, Some(_), _) => {
                // A PATCH limited through the update limit reads the patch count when the
                // record has one, else the update count (rule 6 of the decision): it counts on
                // the counter it reads.
                let counted = if *action == Action::Patch
                    && terms.patch_counts_updates
                    && usage
                        .is_none_or(|usage| usage.action_count(resource, &Action::Patch).is_none())
                {
                    Action::Update
                } else {
                    action.clone()
                };
                (Some(per_action(counted)), None, 0)
            }
            (_, None, _) => (None, None, terms.usage(usage, resource, action)),
        };
        if reserve.is_none() && items.is_none() && terms.pool.is_none() {
            return None;
        }
        let mut hold = Hold::new(ReservationId::new());
        let action_line = reserve.map(|(counter, limit, start)| {
            hold.push(
                Line::new(counter, terms.action_units())
                    .limit(limit)
                    .seed(start),
            );
            hold.lines().len() - 1
        });
        let pool_line = terms.pool.map(|pool| {
            let mut counter = Counter::credits(Arc::clone(user), pool.name);
            counter.period = pool.window;
            let mut line = Line::new(counter, terms.units).limit(pool.limit.maximum());
            for grant in active_grants(subscriber, pool.name, now_ms) {
                let counter = Counter::grant(Arc::clone(user), pool.name, Arc::clone(&grant.id));
                line = line.grant(Spill::new(counter, grant.amount));
            }
            // A pool's overage is spent last, after the grants: on a counter of its own, per
            // period.
            if let Some(max) = pool.limit.maximum() {
                let overage = match pool.overage {
                    Overage::Off => 0,
                    Overage::Up(units) => units,
                    Overage::Unbounded => u64::MAX - max,
                };
                if overage > 0 {
                    let mut counter = overage_counter(user, pool.name);
                    counter.period = pool.window;
                    line = line.grant(Spill::new(counter, overage));
                }
            }
            hold.push(line);
            hold.lines().len() - 1
        });
        let reported_line = match terms.cost {
            Some(cost) if cost.is_reported() => pool_line.or(action_line),
            _ => None,
        };
        Some(Tally {
            hold,
            action_line,
            pool_line,
            reported_line,
            items,
            unreserved_usage,
        })
    }

    /// The counter a request would reserve on for its action and where it starts, `None` when
    /// it reserves nothing there.
    pub(crate) fn counter(&self) -> Option<(&Counter, Seed)> {
        let line = self.hold.lines().get(self.action_line?)?;
        Some((line.counter(), line.start()))
    }

    /// The reservation of what the tally reserves, `None` when it reserves nothing.
    pub(crate) fn hold(&self) -> Option<&Hold> {
        (!self.hold.lines().is_empty()).then_some(&self.hold)
    }
}

/// Where the lifetime counter of `action` (already normalised) on `resource` starts: what the
/// record gives the action. The item count (a create) and an action with a count of its own
/// start at that count; any other action of a resource counted per action at 0; of a resource
/// counted plainly, or not at all, at the item count ([`Seed::Items`], from the plain count).
fn seed(usage: Option<&Usage>, resource: &str, action: &Action) -> Seed {
    let usage = usage.and_then(|usage| usage.resource(resource));
    if *action == Action::Create {
        return Seed::Count(usage.map_or(0, |usage| usage.get(action)));
    }
    let Some(usage) = usage else {
        // Not named: a plain count of 0.
        return Seed::Items(0);
    };
    match (usage.action_count(action), usage.count()) {
        (Some(own), _) => Seed::Count(own),
        (None, Some(plain)) => Seed::Items(plain),
        (None, None) => Seed::Count(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Period};
    use crate::decision::{terms, Policy};
    use crate::store::Counted;
    use crate::subscriber::{AddonGrant, Assignment, Subscriber};

    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{"plans": [{"name": "free", "limits": {
                "clients": 3,
                "tasks": {"index": null, "show": 10, "update": 5, "delete": 2},
                "notes": {"create": null}
            }}], "addons": [
                {"name": "more-clients", "limits": {"clients": 10}},
                {"name": "edits", "limits": {"tasks": {"patch": 4}}}
            ]}"#,
        )
        .unwrap()
    }

    /// The tally of `action` on `resource` for a user on free with these add-ons.
    fn tally_with(
        action: Action,
        resource: &str,
        usage: Option<&Usage>,
        addons: &[&str],
    ) -> Option<Tally> {
        let mut user = Subscriber::new().with_plan(Assignment::new("free"));
        for addon in addons {
            user = user.with_addon(AddonGrant::new(*addon));
        }
        tally_in(&catalog(), &user, 0, action, resource, usage)
    }

    /// The tally of `action` on `resource` for `user` in `catalog` at `now`.
    pub(crate) fn tally_in(
        catalog: &Catalog,
        user: &Subscriber,
        now: u64,
        action: Action,
        resource: &str,
        usage: Option<&Usage>,
    ) -> Option<Tally> {
        let terms = terms(
            catalog,
            Some(user),
            || now,
            &Policy::new(),
            resource,
            &action,
        )
        .expect("free applies");
        let mut user = user.clone();
        if let Some(usage) = usage {
            user.usage = usage.clone();
        }
        Tally::of(
            &terms,
            Some(&user),
            now,
            &Arc::from("john"),
            &Arc::from(resource),
            &action,
        )
    }

    fn tally(action: Action, resource: &str, usage: Option<&Usage>) -> Option<Tally> {
        tally_with(action, resource, usage, &[])
    }

    fn reserved(tally: &Tally) -> Option<(Counted, Option<u64>, Seed)> {
        let line = tally.hold.lines().get(tally.action_line?)?;
        Some((line.counter().counted.clone(), line.max(), line.start()))
    }

    #[test]
    fn what_each_action_counts() {
        let mut usage = Usage::new();
        usage.set("clients", 2);
        usage.set_action("tasks", &Action::Update, 4);
        usage.set_action("tasks", &Action::Delete, 1);

        let create = tally(Action::Create, "clients", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&create),
            Some((Counted::Items, Some(3), Seed::Count(2)))
        );
        assert!(create.items.is_none());

        // An unlimited create still counts items, so a later plan change finds the right count.
        let unlimited = tally(Action::Create, "notes", None).unwrap();
        assert_eq!(
            reserved(&unlimited),
            Some((Counted::Items, None, Seed::Count(0)))
        );

        // A delete gives an item back; under a finite delete limit it also reserves a delete.
        let delete = tally(Action::Delete, "tasks", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&delete),
            Some((Counted::Action(Action::Delete), Some(2), Seed::Count(1)))
        );
        let (counter, delta, seed) = delete.items.as_ref().unwrap();
        assert_eq!(
            (&counter.counted, *delta, *seed),
            (&Counted::Items, -1, Seed::Count(0))
        );
        let free_delete = tally(Action::Delete, "clients", Some(&usage)).unwrap();
        assert!(free_delete.action_line.is_none());
        let (_, delta, seed) = free_delete.items.as_ref().unwrap();
        assert_eq!((*delta, *seed), (-1, Seed::Count(2)));
        assert_eq!(free_delete.unreserved_usage, 2);

        // Other actions count only under a finite limit.
        let show = tally(Action::Show, "tasks", None).unwrap();
        assert_eq!(
            reserved(&show),
            Some((Counted::Action(Action::Show), Some(10), Seed::Items(0)))
        );
        assert!(tally(Action::Index, "tasks", None).is_none());
        assert!(tally(Action::Show, "clients", None).is_none());

        // A PATCH under the update limit counts updates.
        let patch = tally(Action::Patch, "tasks", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&patch),
            Some((Counted::Action(Action::Update), Some(5), Seed::Count(4)))
        );
    }

    #[test]
    fn seeds_read_the_record_as_the_decision_does() {
        let mut usage = Usage::new();
        usage.set("tasks", 5);
        // A plain count: the actions without a count of their own read the item count.
        let show = tally(Action::Show, "tasks", Some(&usage)).unwrap();
        assert_eq!(reserved(&show).unwrap().2, Seed::Items(5));
        // One with a count of its own starts there.
        usage.set_action("tasks", &Action::Show, 7);
        let show = tally(Action::Show, "tasks", Some(&usage)).unwrap();
        assert_eq!(reserved(&show).unwrap().2, Seed::Count(7));
        // Counted per action only: the others read 0.
        usage.remove("tasks");
        usage.set_action("tasks", &Action::Update, 1);
        let show = tally(Action::Show, "tasks", Some(&usage)).unwrap();
        assert_eq!(reserved(&show).unwrap().2, Seed::Count(0));
        // A PATCH under the update limit, with a patch count of its own, counts patches.
        usage.set_action("tasks", &Action::Patch, 3);
        let patch = tally(Action::Patch, "tasks", Some(&usage)).unwrap();
        assert_eq!(
            reserved(&patch),
            Some((Counted::Action(Action::Patch), Some(5), Seed::Count(3)))
        );
    }

    #[test]
    fn add_ons_raise_the_limit_reserved_against_but_not_the_counter() {
        let mut usage = Usage::new();
        usage.set("clients", 5);
        usage.set_action("tasks", &Action::Update, 4);

        let create = tally_with(Action::Create, "clients", Some(&usage), &["more-clients"]);
        assert_eq!(
            reserved(&create.unwrap()),
            Some((Counted::Items, Some(13), Seed::Count(5)))
        );
        let twice = tally_with(
            Action::Create,
            "clients",
            Some(&usage),
            &["more-clients", "more-clients"],
        );
        assert_eq!(
            reserved(&twice.unwrap()),
            Some((Counted::Items, Some(23), Seed::Count(5)))
        );

        // An add-on's patch limit raises the PATCH limit; the plan shares PATCH with the
        // updates, so the PATCH is still counted with the updates.
        let patch = tally_with(Action::Patch, "tasks", Some(&usage), &["edits"]);
        assert_eq!(
            reserved(&patch.unwrap()),
            Some((Counted::Action(Action::Update), Some(9), Seed::Count(4)))
        );
        let put = tally_with(Action::Update, "tasks", Some(&usage), &["edits"]);
        assert_eq!(
            reserved(&put.unwrap()),
            Some((Counted::Action(Action::Update), Some(5), Seed::Count(4)))
        );
    }

    #[test]
    fn quotas_count_per_period_from_nothing() {
        let catalog = Catalog::from_json(
            r#"[{"name": "free", "limits": {
                "reports": {"create": {"max": 2, "per": "month"}, "delete": {"max": 1, "per": "day"}},
                "calls": {"index": {"max": 1000, "per": "month"}}
            }}]"#,
        )
        .unwrap();
        let user = Subscriber::new().with_plan(Assignment::new("free"));
        let mut usage = Usage::new();
        usage.set("reports", 7);
        usage.set_action("calls", &Action::Index, 400);
        let now = 1_795_953_600_000;
        let tally = |resource: &str, action: Action| {
            tally_in(&catalog, &user, now, action, resource, Some(&usage)).unwrap()
        };

        // A create reserves on the month's create counter, from 0, and adds an item on success.
        let create = tally("reports", Action::Create);
        let line = &create.hold.lines()[create.action_line.unwrap()];
        let (counter, limit, seed) = (line.counter(), &line.max(), &line.start());
        assert_eq!(counter.counted, Counted::Action(Action::Create));
        assert_eq!(counter.period, Some(Period::Month.window(now)));
        assert_eq!((*limit, *seed), (Some(2), Seed::Count(0)));
        let (items, delta, seed) = create.items.as_ref().unwrap();
        assert_eq!(
            (&items.counted, items.period, *delta, *seed),
            (&Counted::Items, None, 1, Seed::Count(7))
        );

        // A delete gives an item back, never a create of the period, and reserves on the day's
        // delete counter.
        let delete = tally("reports", Action::Delete);
        let line = &delete.hold.lines()[delete.action_line.unwrap()];
        let (counter, limit, seed) = (line.counter(), &line.max(), &line.start());
        assert_eq!(counter.counted, Counted::Action(Action::Delete));
        assert_eq!(counter.period, Some(Period::Day.window(now)));
        assert_eq!((*limit, *seed), (Some(1), Seed::Count(0)));
        let (items, delta, _) = delete.items.as_ref().unwrap();
        assert_eq!((items.period, *delta), (None, -1));

        // The record's lifetime count does not seed a period.
        let index = tally("calls", Action::Index);
        let line = &index.hold.lines()[index.action_line.unwrap()];
        let (counter, limit, seed) = (line.counter(), &line.max(), &line.start());
        assert_eq!(counter.period, Some(Period::Month.window(now)));
        assert_eq!((*limit, *seed), (Some(1000), Seed::Count(0)));
    }
}
