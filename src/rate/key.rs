//! The key of one rate: whose, and over which requests.

use std::sync::Arc;

use crate::catalog::Action;

/// Whose rate: a user's plan-wide rate, or their rate on one action of one resource.
///
/// Build one with [`RateKey::plan`] or [`RateKey::action`]. A [`RateStore`](super::RateStore)
/// keeps one theoretical arrival time per key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateKey {
    /// The user's id.
    pub user: Arc<str>,
    /// Which of the user's requests the rate counts.
    pub scope: RateScope,
}

/// Which of a user's requests a rate counts: see [`RateKey`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// Every governed request of the user (the plan's `"rate"`).
    Plan,
    /// The user's requests of one action on one resource (a limit's `"rate"`).
    Action {
        /// The resource's name, as the catalog spells it.
        resource: Arc<str>,
        /// The action.
        action: Action,
    },
}

impl RateKey {
    /// The rate of every governed request of `user`.
    pub fn plan(user: impl Into<Arc<str>>) -> Self {
        Self {
            user: user.into(),
            scope: RateScope::Plan,
        }
    }

    /// The rate of `user`'s `action` requests on `resource`.
    ///
    /// An [`Action::Custom`] carrying a REST name is that REST action
    /// (`Action::Custom("destroy")` is [`Action::Delete`]), as in the catalog, so that both name
    /// one rate.
    pub fn action(
        user: impl Into<Arc<str>>,
        resource: impl Into<Arc<str>>,
        action: Action,
    ) -> Self {
        Self {
            user: user.into(),
            scope: RateScope::Action {
                resource: resource.into(),
                action: action.normalised().into_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_key_names_rest_actions_one_way() {
        let custom = RateKey::action("john", "clients", Action::Custom("destroy".into()));
        let rest = RateKey::action("john", "clients", Action::Delete);
        assert_eq!(custom, rest);
        assert_eq!(
            rest.scope,
            RateScope::Action {
                resource: "clients".into(),
                action: Action::Delete
            }
        );
        let export = RateKey::action("john", "clients", Action::Custom("export".into()));
        assert_ne!(export, rest);
        assert_ne!(RateKey::plan("john"), rest);
        assert_eq!(RateKey::plan("john").scope, RateScope::Plan);
    }
}
