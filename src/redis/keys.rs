//! Where everything lives in Redis: key names, the escaping of user ids and names, and the
//! invalidation channel. The layout and the escaping rules are described once, in the
//! [module docs](super#keys).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::catalog::Action;
use crate::rate::{RateKey, RateScope};
use crate::store::{Counted, Counter};

/// The prefix of every key and of the channel, unless configured.
pub(crate) const DEFAULT_PREFIX: &str = "tower-plans";

/// Bytes kept as they are: ASCII letters and digits, `-`, `_` and `.`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A user id, resource or action name as it appears in a key: an injective escaping whose output
/// never holds `:`, `{`, `}` or a space.
pub(crate) fn escape(name: &str) -> Cow<'_, str> {
    if name.is_empty() {
        return Cow::Borrowed("%");
    }
    utf8_percent_encode(name, ESCAPED).into()
}

/// The key names of one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: Arc<str>,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    /// The keys under `prefix`; braces in it are escaped, so that it holds no hash tag.
    pub(crate) fn new(prefix: &str) -> Self {
        let prefix = if prefix.contains(['{', '}']) {
            prefix.replace('{', "%7B").replace('}', "%7D")
        } else {
            prefix.to_owned()
        };
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix as it appears in keys.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix:{user}:`, the start of every key of `user`.
    fn user_base(&self, user: &str, capacity: usize) -> String {
        let user = escape(user);
        let mut key = String::with_capacity(self.prefix.len() + user.len() + 4 + capacity);
        key.push_str(&self.prefix);
        key.push_str(":{");
        key.push_str(&user);
        key.push_str("}:");
        key
    }

    /// The key of the catalog's JSON.
    pub(crate) fn catalog(&self) -> String {
        format!("{}:catalog", self.prefix)
    }

    /// The key of a user's subscriber record (JSON).
    pub(crate) fn user(&self, user: &str) -> String {
        let mut key = self.user_base(user, 4);
        key.push_str("user");
        key
    }

    /// The hash of a user's used counts.
    pub(crate) fn used(&self, user: &str) -> String {
        let mut key = self.user_base(user, 4);
        key.push_str("used");
        key
    }

    /// The hash that holds `counter`'s used count: the user's hash of used counts or, for a
    /// period counter, the hash of the user's counts in that period (`used@2026-11`), which
    /// expires after the period.
    pub(crate) fn used_by(&self, counter: &Counter) -> String {
        let mut key = self.used(&counter.user);
        push_period(&mut key, counter);
        key
    }

    /// The sorted set of the reservations held on `counter` (`held:reports:i@2026-11` for a
    /// period counter).
    pub(crate) fn held(&self, counter: &Counter) -> String {
        let field = field(counter);
        let mut key = self.user_base(&counter.user, 5 + field.len());
        key.push_str("held:");
        key.push_str(&field);
        push_period(&mut key, counter);
        key
    }

    /// The hash of the units each reservation holds on `counter`, by reservation id, with their
    /// exact sum in field `total` (`units:reports:i@2026-11` for a period counter). It lives and
    /// expires with the sorted set of [`held`](Self::held).
    pub(crate) fn units(&self, counter: &Counter) -> String {
        let field = field(counter);
        let mut key = self.user_base(&counter.user, 6 + field.len());
        key.push_str("units:");
        key.push_str(&field);
        push_period(&mut key, counter);
        key
    }

    /// The hash of the alert markers set on `counter` (`marks:reports:i@2026-11` for a period
    /// counter), one field per marker, as [`UsageStore::mark`](crate::UsageStore::mark) names
    /// it. A period counter's hash expires one period after the period ends.
    pub(crate) fn marks(&self, counter: &Counter) -> String {
        let field = field(counter);
        let mut key = self.user_base(&counter.user, 6 + field.len());
        key.push_str("marks:");
        key.push_str(&field);
        push_period(&mut key, counter);
        key
    }

    /// The key of a rate's theoretical arrival time: `rate` for the user's plan-wide rate,
    /// `rate:resource:action` for an action's (the action as [`RateKey::action`] names it, so
    /// that a custom action with a REST name is that REST action).
    pub(crate) fn rate(&self, key: &RateKey) -> String {
        match &key.scope {
            RateScope::Plan => {
                let mut name = self.user_base(&key.user, 4);
                name.push_str("rate");
                name
            }
            RateScope::Action { resource, action } => {
                let resource = escape(resource);
                let action = action.normalised();
                let action = escape(action.as_str());
                let mut name = self.user_base(&key.user, 6 + resource.len() + action.len());
                name.push_str("rate:");
                name.push_str(&resource);
                name.push(':');
                name.push_str(&action);
                name
            }
        }
    }

    /// The pub/sub channel of invalidation messages.
    pub(crate) fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }
}

/// Appends `@` and the label of `counter`'s period, if it has one: a calendar period's
/// (`2026-11-29T12`, `2026-11-29`, `2026-W48`, `2026-11`, `2026`: digits, `-`, `T` and `W` only)
/// or a billing cycle's (`m1794735000000`: a lowercase letter, then digits), distinct across the
/// kinds of period and between calendar periods and cycles.
fn push_period(key: &mut String, counter: &Counter) {
    if let Some(window) = &counter.period {
        // Writing to a String cannot fail.
        let _ = write!(key, "@{window}");
    }
}

/// The field of `counter` in its user's hash of used counts: `resource:i` for the items (and for
/// the `create` action, which counts them, as in [`MemoryStore`](crate::MemoryStore)),
/// `resource:a:action` for an action, `pool:c` for a credit pool and `pool:g:id` for one of its
/// grants. Names are escaped, so the `:` between them and the one-letter kind keep every
/// counter's field apart.
pub(crate) fn field(counter: &Counter) -> String {
    let resource = escape(&counter.resource);
    let mut field = String::with_capacity(resource.len() + 12);
    field.push_str(&resource);
    match &counter.counted {
        Counted::Action(action) => match action.normalised().into_owned() {
            Action::Create => field.push_str(":i"),
            action => {
                // Writing to a String cannot fail.
                let _ = write!(field, ":a:{}", escape(action.as_str()));
            }
        },
        Counted::Items => field.push_str(":i"),
        Counted::Credits => field.push_str(":c"),
        Counted::Grant(id) => {
            // Writing to a String cannot fail.
            let _ = write!(field, ":g:{}", escape(id));
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Period;

    #[test]
    fn escaping_keeps_plain_ids_and_escapes_the_rest() {
        assert_eq!(escape("john"), "john");
        assert_eq!(escape("a-b_c.d"), "a-b_c.d");
        assert_eq!(escape("a:b"), "a%3Ab");
        assert_eq!(escape("{x}"), "%7Bx%7D");
        assert_eq!(escape("a b"), "a%20b");
        assert_eq!(escape("100%"), "100%25");
        assert_eq!(escape("zoë"), "zo%C3%AB");
        assert_eq!(escape(""), "%");
    }

    #[test]
    fn escaping_is_injective_on_tricky_ids() {
        let ids = [
            "", "%", "%25", "a", "a:b", "a%3Ab", "a:b:c", "{a}", "%7Ba%7D", "a}", "a{", "a b",
            "a+b", "a%20b", "zoë", "zo%C3%AB", "日本", ":", "::", "}:{",
        ];
        let mut escaped: Vec<String> = ids.iter().map(|id| escape(id).into_owned()).collect();
        escaped.sort();
        escaped.dedup();
        assert_eq!(escaped.len(), ids.len());
        for id in ids {
            let e = escape(id);
            assert!(!e.contains([':', '{', '}', ' ']), "{id:?} -> {e}");
        }
    }

    #[test]
    fn key_layout() {
        let keys = Keys::default();
        assert_eq!(keys.catalog(), "tower-plans:catalog");
        assert_eq!(keys.user("john"), "tower-plans:{john}:user");
        assert_eq!(keys.used("john"), "tower-plans:{john}:used");
        assert_eq!(
            keys.held(&Counter::items("john", "clients")),
            "tower-plans:{john}:held:clients:i"
        );
        assert_eq!(
            keys.held(&Counter::action("a:b", "tasks", Action::Show)),
            "tower-plans:{a%3Ab}:held:tasks:a:show"
        );
        assert_eq!(keys.channel(), "tower-plans:invalidate");
        // 2026-11-29T12:00:00Z.
        let now = 1_795_953_600_000;
        let monthly =
            Counter::action("john", "reports", Action::Create).in_period(Period::Month.window(now));
        assert_eq!(keys.used_by(&monthly), "tower-plans:{john}:used@2026-11");
        assert_eq!(
            keys.held(&monthly),
            "tower-plans:{john}:held:reports:i@2026-11"
        );
        let weekly =
            Counter::action("john", "exports", Action::Index).in_period(Period::Week.window(now));
        assert_eq!(keys.used_by(&weekly), "tower-plans:{john}:used@2026-W48");
        let daily = weekly.clone().in_period(Period::Day.window(now));
        assert_eq!(keys.used_by(&daily), "tower-plans:{john}:used@2026-11-29");
        let yearly = weekly.in_period(Period::Year.window(now));
        assert_eq!(
            keys.held(&yearly),
            "tower-plans:{john}:held:exports:a:index@2026"
        );
        assert_eq!(
            keys.used_by(&Counter::items("john", "clients")),
            keys.used("john")
        );
        assert_eq!(keys.user(""), "tower-plans:{%}:user");
    }

    #[test]
    fn markers_are_kept_per_counter_and_period_in_the_users_slot() {
        let keys = Keys::default();
        assert_eq!(
            keys.marks(&Counter::items("john", "clients")),
            "tower-plans:{john}:marks:clients:i"
        );
        assert_eq!(
            keys.marks(&Counter::action("a:b", "tasks", Action::Show)),
            "tower-plans:{a%3Ab}:marks:tasks:a:show"
        );
        // 2026-11-29T12:00:00Z.
        let month = Period::Month.window(1_795_953_600_000);
        let pool = Counter::credits("john", "ai");
        assert_eq!(
            keys.marks(&pool.clone().in_period(month)),
            "tower-plans:{john}:marks:ai:c@2026-11"
        );
        // Apart from every other key of the counter.
        assert_ne!(keys.marks(&pool), keys.held(&pool));
        assert_ne!(keys.marks(&pool), keys.units(&pool));
    }

    #[test]
    fn create_and_items_share_a_field_and_custom_names_are_escaped() {
        let items = Counter::items("john", "clients");
        let create = Counter::action("john", "clients", Action::Create);
        assert_eq!(field(&items), field(&create));
        let mut custom = Counter::action("john", "clients", Action::Show);
        custom.counted = Counted::Action(Action::Custom(Arc::from("create")));
        assert_eq!(field(&custom), "clients:i");
        let odd = Counter::action("john", "a:i", Action::custom("x y"));
        assert_eq!(field(&odd), "a%3Ai:a:x%20y");
        // A custom action named like the items marker is still an action.
        let named_i = Counter::action("john", "clients", Action::custom("i"));
        assert_eq!(field(&named_i), "clients:a:i");
    }

    #[test]
    fn credits_and_grants_have_fields_of_their_own() {
        let keys = Keys::default();
        let pool = Counter::credits("john", "ai");
        assert_eq!(field(&pool), "ai:c");
        assert_eq!(keys.used_by(&pool), "tower-plans:{john}:used");
        assert_eq!(keys.held(&pool), "tower-plans:{john}:held:ai:c");
        assert_eq!(keys.units(&pool), "tower-plans:{john}:units:ai:c");
        // 2026-11-29T12:00:00Z: a period pool lives in the period's hash.
        let month = Period::Month.window(1_795_953_600_000);
        let monthly = pool.clone().in_period(month);
        assert_eq!(keys.used_by(&monthly), "tower-plans:{john}:used@2026-11");
        assert_eq!(
            keys.units(&monthly),
            "tower-plans:{john}:units:ai:c@2026-11"
        );
        let grant = Counter::grant("john", "ai", "g:1 {x}");
        assert_eq!(field(&grant), "ai:g:g%3A1%20%7Bx%7D");
        assert_eq!(
            keys.held(&grant),
            "tower-plans:{john}:held:ai:g:g%3A1%20%7Bx%7D"
        );
        // Pools, resources and grants named alike stay apart, whatever their names hold.
        let fields = [
            field(&Counter::items("john", "ai")),
            field(&Counter::action("john", "ai", Action::custom("c"))),
            field(&Counter::action("john", "ai", Action::custom("g"))),
            field(&pool),
            field(&Counter::credits("john", "ai:c")),
            field(&Counter::credits("john", "ai:g")),
            field(&Counter::grant("john", "ai", "")),
            field(&Counter::grant("john", "ai", "c")),
            field(&Counter::grant("john", "ai:g", "x")),
            field(&Counter::grant("john", "ai", "g:x")),
            field(&Counter::grant("john", "ai", "%")),
        ];
        let mut distinct = fields.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), fields.len(), "{fields:?}");
    }

    #[test]
    fn rates_have_keys_of_their_own_in_the_users_slot() {
        let keys = Keys::default();
        assert_eq!(keys.rate(&RateKey::plan("john")), "tower-plans:{john}:rate");
        assert_eq!(
            keys.rate(&RateKey::action("a:b", "clients", Action::Index)),
            "tower-plans:{a%3Ab}:rate:clients:index"
        );
        // A key built by hand with a REST name is that REST action, as `RateKey::action` says.
        let by_hand = RateKey {
            user: "john".into(),
            scope: RateScope::Action {
                resource: "clients".into(),
                action: Action::Custom("destroy".into()),
            },
        };
        assert_eq!(
            keys.rate(&by_hand),
            keys.rate(&RateKey::action("john", "clients", Action::Delete))
        );
        // Names with `:`, spaces or braces never reach another rate's key.
        let rates = [
            RateKey::plan("john"),
            RateKey::plan("john:rate"),
            RateKey::action("john", "clients", Action::Index),
            RateKey::action("john", "clients:index", Action::custom("x")),
            RateKey::action("john", "clients", Action::custom("index:x")),
            RateKey::action("john", "a b", Action::custom("{c}")),
            RateKey::action("john", "", Action::custom("")),
            RateKey::action("", "clients", Action::Index),
        ];
        let mut names: Vec<String> = rates.iter().map(|key| keys.rate(key)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), rates.len(), "{names:?}");
        assert_eq!(
            keys.rate(&RateKey::action("john", "a b", Action::custom("{c}"))),
            "tower-plans:{john}:rate:a%20b:%7Bc%7D"
        );
    }

    #[test]
    fn braces_in_the_prefix_are_escaped() {
        let keys = Keys::new("app{1}");
        assert_eq!(keys.prefix(), "app%7B1%7D");
        assert_eq!(keys.user("john"), "app%7B1%7D:{john}:user");
    }
}
