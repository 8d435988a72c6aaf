//! Stripe events as Stripe posts them: the envelope, and the subscription of a
//! `customer.subscription.*` event.

use serde_json::{Map, Value};

use crate::format::{describe, non_negative_integer, FormatError, JsonPath};

/// A Stripe event: its envelope, and for the subscription events the receiver applies, the
/// subscription it carries (`data.object`).
///
/// Read with [`StripeEvent::from_slice`]: every field the receiver reads must have Stripe's
/// type, or the body is malformed (a [`FormatError`] naming the path, such as
/// `data.object.items.data[0].quantity`, answered `400`); every other field is ignored, so
/// that any API version reads. Required: `id`, `type`, `created`, and for the applied types
/// `data.object` with the subscription's `id`, `status` and `items.data`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StripeEvent {
    /// The event's id (`evt_...`); a redelivery carries the same id.
    pub id: String,
    /// The event's type (`customer.subscription.updated`).
    pub event_type: String,
    /// When Stripe created the event, in seconds since the Unix epoch.
    pub created: u64,
    /// The API version the event was rendered with (`2025-03-31.basil`), if given.
    pub api_version: Option<String>,
    /// The subscription, for the event types [`kind`](Self::kind) names; `None` for others.
    pub subscription: Option<Subscription>,
}

/// The kind of a [`StripeEvent`], from its `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StripeEventKind {
    /// `customer.subscription.created`.
    Created,
    /// `customer.subscription.updated`.
    Updated,
    /// `customer.subscription.paused`.
    Paused,
    /// `customer.subscription.resumed`.
    Resumed,
    /// `customer.subscription.deleted`: the subscription ended.
    Deleted,
    /// Any other type: acknowledged, never applied.
    Other,
}

impl StripeEventKind {
    /// The kind of the event type `event_type` (exact match).
    pub fn of(event_type: &str) -> Self {
        match event_type {
            "customer.subscription.created" => Self::Created,
            "customer.subscription.updated" => Self::Updated,
            "customer.subscription.paused" => Self::Paused,
            "customer.subscription.resumed" => Self::Resumed,
            "customer.subscription.deleted" => Self::Deleted,
            _ => Self::Other,
        }
    }

    /// Where an event of this kind stands among events of one subscription created in the same
    /// second: a `created` comes first, a `deleted` last.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Created => 0,
            Self::Deleted => 2,
            _ => 1,
        }
    }
}

/// A subscription's status (`status`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionStatus {
    /// `trialing`.
    Trialing,
    /// `active`.
    Active,
    /// `past_due`: the latest invoice is unpaid; Stripe retries.
    PastDue,
    /// `unpaid`: Stripe stopped retrying.
    Unpaid,
    /// `canceled`.
    Canceled,
    /// `incomplete`: the first payment has not succeeded yet.
    Incomplete,
    /// `incomplete_expired`: the first payment never succeeded.
    IncompleteExpired,
    /// `paused`: a trial ended without a payment method.
    Paused,
    /// A status this version does not know, as Stripe wrote it.
    Other(String),
}

impl SubscriptionStatus {
    /// The status Stripe writes as `status`.
    pub fn parse(status: &str) -> Self {
        match status {
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "unpaid" => Self::Unpaid,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "paused" => Self::Paused,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The status as Stripe writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Unpaid => "unpaid",
            Self::Canceled => "canceled",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Paused => "paused",
            Self::Other(other) => other,
        }
    }
}

/// The fields of a Stripe subscription the receiver reads. Times are in seconds since the Unix
/// epoch, as Stripe writes them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscription {
    /// `id` (`sub_...`).
    pub id: String,
    /// `customer` (`cus_...`; the `id` of an expanded customer).
    pub customer: Option<String>,
    /// `status`.
    pub status: SubscriptionStatus,
    /// `metadata.user_id`, when it is a non-empty string.
    pub user_id: Option<String>,
    /// `items.data`, in order.
    pub items: Vec<SubscriptionItem>,
    /// `items.has_more`: the event lists only some of the items.
    pub more_items: bool,
    /// `current_period_start` on the subscription (API versions before 2025-03-31).
    pub current_period_start: Option<u64>,
    /// `current_period_end` on the subscription (API versions before 2025-03-31).
    pub current_period_end: Option<u64>,
    /// `billing_cycle_anchor`.
    pub billing_cycle_anchor: Option<u64>,
    /// `start_date`: when the subscription started.
    pub start_date: Option<u64>,
    /// `trial_start`.
    pub trial_start: Option<u64>,
    /// `trial_end`.
    pub trial_end: Option<u64>,
}

/// One item of a subscription: a price and a quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionItem {
    /// `price.id` (`price_...`).
    pub price: Option<String>,
    /// `price.lookup_key`.
    pub lookup_key: Option<String>,
    /// `price.product` (`prod_...`; the `id` of an expanded product).
    pub product: Option<String>,
    /// `quantity` (absent for metered prices).
    pub quantity: Option<u64>,
    /// `current_period_start` on the item (API versions from 2025-03-31).
    pub current_period_start: Option<u64>,
    /// `current_period_end` on the item (API versions from 2025-03-31).
    pub current_period_end: Option<u64>,
}

impl StripeEvent {
    /// Parses an event from the raw JSON body.
    ///
    /// # Errors
    /// A [`FormatError`] naming the first field that is missing or of the wrong type (an empty
    /// path when the body is not JSON at all).
    ///
    /// ```
    /// use tower_plans::stripe::{StripeEvent, StripeEventKind, SubscriptionStatus};
    ///
    /// let event = StripeEvent::from_slice(br#"{
    ///     "id": "evt_1", "type": "customer.subscription.updated", "created": 1714000000,
    ///     "data": {"object": {"id": "sub_1", "object": "subscription", "status": "active",
    ///         "customer": "cus_1", "metadata": {"user_id": "john"},
    ///         "items": {"data": [{"price": {"id": "price_1", "lookup_key": "pro_monthly"},
    ///                             "quantity": 1}]}}}}"#)?;
    /// assert_eq!(event.kind(), StripeEventKind::Updated);
    /// let subscription = event.subscription.expect("a subscription event");
    /// assert_eq!(subscription.status, SubscriptionStatus::Active);
    /// assert_eq!(subscription.user_id.as_deref(), Some("john"));
    /// assert_eq!(subscription.items[0].lookup_key.as_deref(), Some("pro_monthly"));
    ///
    /// let err = StripeEvent::from_slice(br#"{"id": "evt_1", "type": "x", "created": "now"}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.path(), "created");
    /// # Ok::<(), tower_plans::format::FormatError>(())
    /// ```
    pub fn from_slice(json: &[u8]) -> Result<Self, FormatError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|error| FormatError::new("", format!("invalid JSON: {error}")))?;
        Self::from_value(&value)
    }

    /// Reads an event from an already parsed JSON value; see [`from_slice`](Self::from_slice).
    ///
    /// # Errors
    /// A [`FormatError`] naming the first field that is missing or of the wrong type.
    pub fn from_value(value: &Value) -> Result<Self, FormatError> {
        let root = JsonPath::root();
        let map = object(value, &root, "a Stripe event (an object)")?;
        let id = required_text(map, "id", &root)?;
        let event_type = required_text(map, "type", &root)?;
        let created = required_seconds(map, "created", &root)?;
        let api_version = text(map, "api_version", &root)?;
        let subscription = match StripeEventKind::of(&event_type) {
            StripeEventKind::Other => None,
            _ => {
                let data_path = root.key("data");
                let data = object(
                    map.get("data").unwrap_or(&Value::Null),
                    &data_path,
                    "the event's data (an object)",
                )?;
                let object_path = data_path.key("object");
                Some(subscription(
                    data.get("object").unwrap_or(&Value::Null),
                    &object_path,
                )?)
            }
        };
        Ok(Self {
            id,
            event_type,
            created,
            api_version,
            subscription,
        })
    }

    /// The event's kind, from its type.
    pub fn kind(&self) -> StripeEventKind {
        StripeEventKind::of(&self.event_type)
    }
}

fn subscription(value: &Value, path: &JsonPath<'_>) -> Result<Subscription, FormatError> {
    let map = object(value, path, "a subscription (an object)")?;
    if let Some(kind) = map.get("object") {
        if kind.as_str() != Some("subscription") {
            return Err(path.key("object").error(format!(
                "expected the string \"subscription\", found {}",
                describe(kind)
            )));
        }
    }
    let id = required_text(map, "id", path)?;
    let status = SubscriptionStatus::parse(&required_text(map, "status", path)?);
    let customer = id_or_object(map, "customer", path)?;
    let user_id = match map.get("metadata") {
        None | Some(Value::Null) => None,
        Some(metadata) => {
            let metadata_path = path.key("metadata");
            let metadata = object(metadata, &metadata_path, "an object of strings")?;
            text(metadata, "user_id", &metadata_path)?.filter(|user| !user.is_empty())
        }
    };
    let items_path = path.key("items");
    let items = object(
        map.get("items").unwrap_or(&Value::Null),
        &items_path,
        "a list of items (an object with `data`)",
    )?;
    let data_path = items_path.key("data");
    let Some(Value::Array(data)) = items.get("data") else {
        return Err(data_path.error(format!(
            "expected an array of subscription items, found {}",
            items
                .get("data")
                .map_or_else(|| "nothing".to_owned(), describe)
        )));
    };
    let mut list = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        list.push(subscription_item(item, &data_path.index(i))?);
    }
    let more_items = match items.get("has_more") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(more)) => *more,
        Some(other) => {
            return Err(items_path.key("has_more").error(format!(
                "expected `true` or `false`, found {}",
                describe(other)
            )))
        }
    };
    Ok(Subscription {
        id,
        customer,
        status,
        user_id,
        items: list,
        more_items,
        current_period_start: seconds(map, "current_period_start", path)?,
        current_period_end: seconds(map, "current_period_end", path)?,
        billing_cycle_anchor: seconds(map, "billing_cycle_anchor", path)?,
        start_date: seconds(map, "start_date", path)?,
        trial_start: seconds(map, "trial_start", path)?,
        trial_end: seconds(map, "trial_end", path)?,
    })
}

fn subscription_item(value: &Value, path: &JsonPath<'_>) -> Result<SubscriptionItem, FormatError> {
    let map = object(value, path, "a subscription item (an object)")?;
    let (price, lookup_key, product) = match map.get("price") {
        None | Some(Value::Null) => (None, None, None),
        Some(price) => {
            let price_path = path.key("price");
            let price = object(price, &price_path, "a price (an object)")?;
            (
                text(price, "id", &price_path)?,
                text(price, "lookup_key", &price_path)?,
                id_or_object(price, "product", &price_path)?,
            )
        }
    };
    Ok(SubscriptionItem {
        price,
        lookup_key,
        product,
        quantity: match map.get("quantity") {
            None | Some(Value::Null) => None,
            Some(value) => Some(non_negative_integer(value).ok_or_else(|| {
                path.key("quantity").error(format!(
                    "expected a quantity (a non-negative integer), found {}",
                    describe(value)
                ))
            })?),
        },
        current_period_start: seconds(map, "current_period_start", path)?,
        current_period_end: seconds(map, "current_period_end", path)?,
    })
}

fn object<'v>(
    value: &'v Value,
    path: &JsonPath<'_>,
    expected: &str,
) -> Result<&'v Map<String, Value>, FormatError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(path.error(format!("expected {expected}, found {}", describe(other)))),
    }
}

/// A string field; `null` or absent is `None`.
fn text(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<Option<String>, FormatError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(path
            .key(key)
            .error(format!("expected a string, found {}", describe(other)))),
    }
}

fn required_text(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<String, FormatError> {
    match text(map, key, path)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(path.key(key).error("missing; expected a non-empty string")),
    }
}

/// A string id, or the `id` of an expanded object; `null` or absent is `None`.
fn id_or_object(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<Option<String>, FormatError> {
    match map.get(key) {
        Some(Value::Object(expanded)) => text(expanded, "id", &path.key(key)),
        _ => text(map, key, path),
    }
}

/// Seconds since the Unix epoch; `null` or absent is `None`.
fn seconds(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<Option<u64>, FormatError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => non_negative_integer(value).map(Some).ok_or_else(|| {
            path.key(key).error(format!(
                "expected seconds since the Unix epoch (a non-negative integer), found {}",
                describe(value)
            ))
        }),
    }
}

fn required_seconds(
    map: &Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<u64, FormatError> {
    seconds(map, key, path)?.ok_or_else(|| {
        path.key(key)
            .error("missing; expected seconds since the Unix epoch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(object: &str) -> Result<StripeEvent, FormatError> {
        StripeEvent::from_slice(
            format!(
                r#"{{"id": "evt_1", "type": "customer.subscription.updated", "created": 1,
                     "data": {{"object": {object}}}}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn other_types_need_no_subscription() {
        let event =
            StripeEvent::from_slice(br#"{"id": "evt_1", "type": "invoice.paid", "created": 5}"#)
                .unwrap();
        assert_eq!(event.kind(), StripeEventKind::Other);
        assert_eq!(event.subscription, None);
        assert_eq!(event.created, 5);
    }

    #[test]
    fn expanded_customers_and_products_give_their_ids() {
        let event = event(
            r#"{"id": "sub_1", "status": "past_due", "customer": {"id": "cus_9"},
                "items": {"data": [{"price": {"id": "price_1", "product": {"id": "prod_7"}},
                                    "current_period_end": 20}], "has_more": true}}"#,
        )
        .unwrap();
        let subscription = event.subscription.unwrap();
        assert_eq!(subscription.customer.as_deref(), Some("cus_9"));
        assert_eq!(subscription.status, SubscriptionStatus::PastDue);
        assert_eq!(subscription.items[0].product.as_deref(), Some("prod_7"));
        assert_eq!(subscription.items[0].current_period_end, Some(20));
        assert_eq!(subscription.items[0].quantity, None);
        assert!(subscription.more_items);
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            "trialing",
            "active",
            "past_due",
            "unpaid",
            "canceled",
            "incomplete",
            "incomplete_expired",
            "paused",
            "something_new",
        ] {
            assert_eq!(SubscriptionStatus::parse(status).as_str(), status);
        }
        assert_eq!(
            SubscriptionStatus::parse("Active"),
            SubscriptionStatus::Other("Active".to_owned())
        );
    }

    #[test]
    fn malformed_events_name_the_path() {
        let cases = [
            (r#"[]"#, ""),
            (r#"{"type": "x", "created": 1}"#, "id"),
            (r#"{"id": "", "type": "x", "created": 1}"#, "id"),
            (r#"{"id": "e", "type": 3, "created": 1}"#, "type"),
            (r#"{"id": "e", "type": "x"}"#, "created"),
            (r#"{"id": "e", "type": "x", "created": -1}"#, "created"),
            (
                r#"{"id": "e", "type": "x", "created": 1, "api_version": 2}"#,
                "api_version",
            ),
            (
                r#"{"id": "e", "type": "customer.subscription.created", "created": 1}"#,
                "data",
            ),
            (
                r#"{"id": "e", "type": "customer.subscription.deleted", "created": 1, "data": {}}"#,
                "data.object",
            ),
        ];
        for (json, path) in cases {
            let err = StripeEvent::from_slice(json.as_bytes()).unwrap_err();
            assert_eq!(err.path(), path, "{json}: {err}");
        }
        let cases = [
            (
                r#"{"id": "sub_1", "items": {"data": []}}"#,
                "data.object.status",
            ),
            (
                r#"{"status": "active", "items": {"data": []}}"#,
                "data.object.id",
            ),
            (
                r#"{"id": "sub_1", "status": "active"}"#,
                "data.object.items",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {}}"#,
                "data.object.items.data",
            ),
            (
                r#"{"id": "sub_1", "object": "invoice", "status": "active", "items": {"data": []}}"#,
                "data.object.object",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "customer": 7, "items": {"data": []}}"#,
                "data.object.customer",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "metadata": {"user_id": 7}, "items": {"data": []}}"#,
                "data.object.metadata.user_id",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "trial_end": "soon", "items": {"data": []}}"#,
                "data.object.trial_end",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {"data": [{"quantity": -2}]}}"#,
                "data.object.items.data[0].quantity",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {"data": [{}, {"price": "price_1"}]}}"#,
                "data.object.items.data[1].price",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {"data": [{"price": {"lookup_key": 1}}]}}"#,
                "data.object.items.data[0].price.lookup_key",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {"data": [{"current_period_end": 1.5}]}}"#,
                "data.object.items.data[0].current_period_end",
            ),
            (
                r#"{"id": "sub_1", "status": "active", "items": {"data": [], "has_more": "no"}}"#,
                "data.object.items.has_more",
            ),
        ];
        for (object, path) in cases {
            let err = event(object).unwrap_err();
            assert_eq!(err.path(), path, "{object}: {err}");
        }
        assert_eq!(
            StripeEvent::from_slice(b"{").unwrap_err().path(),
            "",
            "not JSON"
        );
    }

    #[test]
    fn an_empty_user_id_is_none() {
        let event = event(
            r#"{"id": "sub_1", "status": "active", "metadata": {"user_id": "", "plan": "x"},
                "items": {"data": []}}"#,
        )
        .unwrap();
        assert_eq!(event.subscription.unwrap().user_id, None);
    }

    #[test]
    fn kinds_rank_created_first_and_deleted_last() {
        assert!(StripeEventKind::Created.rank() < StripeEventKind::Updated.rank());
        assert_eq!(
            StripeEventKind::Paused.rank(),
            StripeEventKind::Resumed.rank()
        );
        assert!(StripeEventKind::Updated.rank() < StripeEventKind::Deleted.rank());
        assert_eq!(
            StripeEventKind::of("customer.subscription.resumed"),
            StripeEventKind::Resumed
        );
        assert_eq!(
            StripeEventKind::of("customer.subscription.trial_will_end"),
            StripeEventKind::Other
        );
    }
}
