//! Webhook topics: the well-known ones as constants, any other as text.

use std::{borrow::Borrow, borrow::Cow, convert::Infallible, fmt, str::FromStr};

use super::Permission;

/// The topic of a webhook notification, e.g. `conversation.user.replied`.
///
/// The topics of Intercom's webhook topic reference are constants
/// ([`Topic::PING`], [`Topic::CONVERSATION_USER_CREATED`], …), and every
/// other string is a topic too: Intercom adds topics over time, and a
/// notification with a topic this crate does not know still parses
/// ([`is_known`](Self::is_known) tells them apart).
///
/// A topic compares equal to its text, so both `topic == Topic::PING` and
/// `topic == "ping"` work; `match topic.as_str() { … }` dispatches on it.
/// Cloning a well-known topic never allocates.
///
/// Each well-known topic knows the app permission Intercom requires before
/// it sends that topic ([`required_permission`](Self::required_permission);
/// see [`Permission::required_for`] for a whole subscription).
///
/// # Example
///
/// ```
/// use tower_intercom::notification::{Permission, Topic};
///
/// let topic: Topic = "conversation.admin.closed".parse().unwrap();
/// assert_eq!(topic, Topic::CONVERSATION_ADMIN_CLOSED);
/// assert_eq!(topic, "conversation.admin.closed");
/// assert_eq!(topic.required_permission(), Some(Permission::ReadConversations));
///
/// let new: Topic = "brand_new.thing.happened".into();
/// assert!(!new.is_known());
/// assert_eq!(new.required_permission(), None);
///
/// assert!(Topic::CONTACT_DELETED.is_deleted());
///
/// match topic.as_str() {
///     "conversation.admin.closed" => { /* archive the thread */ }
///     "ping" => {}
///     _ => { /* ignore what you did not subscribe to */ }
/// }
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Cow<'static, str>);

impl Topic {
    /// A topic from static text, usable in `const` items. Prefer the
    /// constants for well-known topics.
    pub const fn from_static(topic: &'static str) -> Self {
        Self(Cow::Borrowed(topic))
    }

    /// The topic's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the topic is in Intercom's webhook topic reference as this
    /// crate knows it (see [`Topic::known`]).
    pub fn is_known(&self) -> bool {
        lookup(self.as_str()).is_some()
    }

    /// Whether this is a deletion topic (`*.deleted`). Intercom sends only
    /// the deleted object's identifying fields for these; see
    /// [`DeletedItem`](crate::notification::DeletedItem).
    pub fn is_deleted(&self) -> bool {
        self.as_str().ends_with(".deleted")
    }

    /// The permission an app needs to receive this topic, as listed in
    /// Intercom's webhook topic reference.
    ///
    /// Where the reference accepts any of several permissions (contact and
    /// company topics), this is the narrowest of them (least privilege:
    /// "Read one user and one company");
    /// [`accepted_permissions`](Self::accepted_permissions) has them all. `None` for `ping` (always subscribed, no permission) and
    /// for topics this crate does not know.
    pub fn required_permission(&self) -> Option<Permission> {
        self.accepted_permissions().first().copied()
    }

    /// Every permission that lets an app receive this topic, narrowest
    /// first; any one of them is enough. Empty for `ping` and for unknown
    /// topics.
    ///
    /// ```
    /// use tower_intercom::notification::{Permission, Topic};
    ///
    /// assert_eq!(
    ///     Topic::COMPANY_CREATED.accepted_permissions(),
    ///     [Permission::ReadOneUserAndOneCompany, Permission::ReadAndListUsersAndCompanies]
    /// );
    /// assert!(Topic::PING.accepted_permissions().is_empty());
    /// ```
    pub fn accepted_permissions(&self) -> &'static [Permission] {
        lookup(self.as_str()).map_or(&[], |known| known.permissions)
    }

    /// Every well-known topic, grouped as in Intercom's reference.
    ///
    /// ```
    /// use tower_intercom::notification::Topic;
    ///
    /// assert!(Topic::known().contains(&Topic::TICKET_CREATED));
    /// assert!(Topic::known().iter().all(Topic::is_known));
    /// ```
    pub fn known() -> &'static [Topic] {
        KNOWN_TOPICS
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Topic").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Topic {
    /// Well-known topics share their static text; others are copied.
    fn from(topic: &str) -> Self {
        match lookup(topic) {
            Some(known) => Self(Cow::Borrowed(known.topic)),
            None => Self(Cow::Owned(topic.to_owned())),
        }
    }
}

impl From<String> for Topic {
    fn from(topic: String) -> Self {
        match lookup(&topic) {
            Some(known) => Self(Cow::Borrowed(known.topic)),
            None => Self(Cow::Owned(topic)),
        }
    }
}

impl From<Topic> for String {
    fn from(topic: Topic) -> Self {
        topic.0.into_owned()
    }
}

impl FromStr for Topic {
    type Err = Infallible;

    /// Never fails: every string is a topic.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        *self == other.as_str()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Topic;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a webhook topic string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Topic, E> {
                Ok(Topic::from(v))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Topic, E> {
                Ok(Topic::from(v))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// A well-known topic and the permissions that let an app receive it.
struct Known {
    topic: &'static str,
    permissions: &'static [Permission],
}

use Permission as P;

const NONE: &[Permission] = &[];
const ADMINS: &[Permission] = &[P::ReadAdmins];
const ARTICLES: &[Permission] = &[P::ReadAndListArticles];
const AUDIENCES: &[Permission] = &[P::ReadAudiences];
const CONVERSATIONS: &[Permission] = &[P::ReadConversations];
const CONTENT: &[Permission] = &[P::ReadContent];
const CONTENT_SNIPPETS: &[Permission] = &[P::ReadContentSnippets];
const CONTENT_DATA: &[Permission] = &[P::ReadContentData];
/// Company topics and `contact.deleted`.
const COMPANIES: &[Permission] = &[P::ReadOneUserAndOneCompany, P::ReadAndListUsersAndCompanies];
/// Contact, visitor and subscription topics.
const CONTACTS: &[Permission] = &[
    P::ReadOneUserAndOneCompany,
    P::ReadAndListUsersAndCompanies,
    P::ReadAndWriteUsers,
];
const EVENTS: &[Permission] = &[P::ReadEvents];
const API_ACTIVITY: &[Permission] = &[P::ReadApiActivityLogs];
const JOBS: &[Permission] = &[P::ReadJobs];
const TICKETS: &[Permission] = &[P::ReadTickets];
const DATA_CONNECTORS: &[Permission] = &[P::ReadDataConnectors];

/// Declares the well-known topics: a constant on `Topic` for each, the
/// list returned by `Topic::known`, and the lookup by text.
macro_rules! topics {
    ($( $name:ident = $topic:literal, $permissions:ident, $doc:literal; )*) => {
        impl Topic {
            $(
                #[doc = concat!("`", $topic, "`: ", $doc)]
                pub const $name: Topic = Topic::from_static($topic);
            )*
        }

        static KNOWN_TOPICS: &[Topic] = &[$(Topic::$name),*];

        fn lookup(topic: &str) -> Option<Known> {
            match topic {
                $( $topic => Some(Known { topic: $topic, permissions: $permissions }), )*
                _ => None,
            }
        }
    };
}

topics! {
    // Admin topics.
    ADMIN_ADDED_TO_WORKSPACE = "admin.added_to_workspace", ADMINS,
        "an admin was added to the workspace.";
    ADMIN_AWAY_MODE_UPDATED = "admin.away_mode_updated", ADMINS,
        "an admin's away mode changed.";
    ADMIN_ACTIVITY_LOG_EVENT_CREATED = "admin.activity_log_event.created", ADMINS,
        "an admin activity log entry was created.";
    ADMIN_REMOVED_FROM_WORKSPACE = "admin.removed_from_workspace", ADMINS,
        "an admin was removed from the workspace.";
    ADMIN_LOGGED_IN = "admin.logged_in", ADMINS,
        "an admin logged in.";
    ADMIN_LOGGED_OUT = "admin.logged_out", ADMINS,
        "an admin logged out, or their SAML SSO session expired.";

    // Article topics.
    ARTICLE_CREATED = "article.created", ARTICLES, "an article was created.";
    ARTICLE_UPDATED = "article.updated", ARTICLES, "an article was updated.";
    ARTICLE_PUBLISHED = "article.published", ARTICLES, "an article was published.";
    ARTICLE_UNPUBLISHED = "article.unpublished", ARTICLES, "an article was unpublished.";
    ARTICLE_DELETED = "article.deleted", ARTICLES, "an article was deleted.";

    // Audience topics (Preview API version).
    AUDIENCE_CREATED = "audience.created", AUDIENCES,
        "an audience was created (Preview API version).";
    AUDIENCE_UPDATED = "audience.updated", AUDIENCES,
        "an audience was updated (Preview API version).";
    AUDIENCE_DELETED = "audience.deleted", AUDIENCES,
        "an audience was deleted (Preview API version).";
    AUDIENCE_MEMBER_ADDED = "audience.member_added", AUDIENCES,
        "content was added to an audience (Preview API version).";
    AUDIENCE_MEMBER_REMOVED = "audience.member_removed", AUDIENCES,
        "content was removed from an audience (Preview API version).";

    // Call topics (Intercom Phone).
    CALL_STARTED = "call.started", CONVERSATIONS, "a phone call started.";
    CALL_ENDED = "call.ended", CONVERSATIONS, "a connected phone call ended.";
    CALL_TRANSCRIPTION_AVAILABLE = "call.transcription_available", CONVERSATIONS,
        "a call transcription is available.";
    CALL_RECORDING_AVAILABLE = "call.recording_available", CONVERSATIONS,
        "a call recording is available.";

    // Content import source topics (Preview API version).
    CONTENT_IMPORT_SOURCE_CREATED = "content_import_source.created", CONTENT,
        "a content import source was created (Preview API version).";
    CONTENT_IMPORT_SOURCE_UPDATED = "content_import_source.updated", CONTENT,
        "a content import source was updated (Preview API version).";
    CONTENT_IMPORT_SOURCE_DELETED = "content_import_source.deleted", CONTENT,
        "a content import source was deleted (Preview API version).";

    // Content snippet topics.
    CONTENT_SNIPPET_CREATED = "content_snippet.created", CONTENT_SNIPPETS,
        "a content snippet was created.";
    CONTENT_SNIPPET_UPDATED = "content_snippet.updated", CONTENT_SNIPPETS,
        "a content snippet was updated.";
    CONTENT_SNIPPET_DELETED = "content_snippet.deleted", CONTENT_SNIPPETS,
        "a content snippet was deleted.";

    // Company topics.
    COMPANY_CREATED = "company.created", COMPANIES, "a company was created.";
    COMPANY_UPDATED = "company.updated", COMPANIES, "a company was updated.";
    COMPANY_DELETED = "company.deleted", COMPANIES, "a company was deleted.";
    COMPANY_CONTACT_ATTACHED = "company.contact.attached", COMPANIES,
        "a company was attached to a contact.";
    COMPANY_CONTACT_DETACHED = "company.contact.detached", COMPANIES,
        "a company was detached from a contact.";

    // Contact topics.
    CONTACT_ARCHIVED = "contact.archived", CONTACTS, "a contact was archived.";
    CONTACT_UNARCHIVE = "contact.unarchive", CONTACTS, "a contact was unarchived.";
    CONTACT_DELETED = "contact.deleted", COMPANIES, "a contact was deleted.";
    CONTACT_EMAIL_UPDATED = "contact.email.updated", CONTACTS,
        "a contact's email address changed.";
    CONTACT_LEAD_ADDED_EMAIL = "contact.lead.added_email", CONTACTS,
        "an email address was added to a lead.";
    CONTACT_LEAD_CREATED = "contact.lead.created", CONTACTS, "a lead was created.";
    CONTACT_LEAD_SIGNED_UP = "contact.lead.signed_up", CONTACTS,
        "a lead became a user.";
    CONTACT_LEAD_TAG_CREATED = "contact.lead.tag.created", CONTACTS, "a lead was tagged.";
    CONTACT_LEAD_TAG_DELETED = "contact.lead.tag.deleted", CONTACTS, "a lead was untagged.";
    CONTACT_LEAD_UPDATED = "contact.lead.updated", CONTACTS, "a lead was updated.";
    CONTACT_MERGED = "contact.merged", CONTACTS,
        "two contacts were merged; the item is the surviving contact, with `merged_from`.";
    CONTACT_SUBSCRIBED = "contact.subscribed", CONTACTS,
        "a contact subscribed to email.";
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed", CONTACTS,
        "a contact unsubscribed from email.";
    CONTACT_USER_CREATED = "contact.user.created", CONTACTS, "a user was created.";
    CONTACT_USER_TAG_CREATED = "contact.user.tag.created", CONTACTS, "a user was tagged.";
    CONTACT_USER_TAG_DELETED = "contact.user.tag.deleted", CONTACTS, "a user was untagged.";
    CONTACT_USER_UPDATED = "contact.user.updated", CONTACTS, "a user was updated.";

    // Conversation topics.
    CONVERSATION_USER_CREATED = "conversation.user.created", CONVERSATIONS,
        "a contact (user or lead) started a conversation.";
    CONVERSATION_USER_REPLIED = "conversation.user.replied", CONVERSATIONS,
        "a contact (visitor, lead or user) replied to a conversation.";
    CONVERSATION_ADMIN_REPLIED = "conversation.admin.replied", CONVERSATIONS,
        "an admin replied to a conversation.";
    CONVERSATION_ADMIN_REPLIED_TRANSLATED = "conversation.admin.replied.translated", CONVERSATIONS,
        "an admin's reply was translated (Preview API version).";
    CONVERSATION_ADMIN_SINGLE_CREATED = "conversation.admin.single.created", CONVERSATIONS,
        "an admin started a one-to-one conversation.";
    CONVERSATION_ADMIN_ASSIGNED = "conversation.admin.assigned", CONVERSATIONS,
        "a conversation was assigned.";
    CONVERSATION_ADMIN_OPEN_ASSIGNED = "conversation.admin.open.assigned", CONVERSATIONS,
        "an open conversation was assigned.";
    CONVERSATION_ADMIN_NOTED = "conversation.admin.noted", CONVERSATIONS,
        "an admin added a note to a conversation.";
    CONVERSATION_ADMIN_CLOSED = "conversation.admin.closed", CONVERSATIONS,
        "an admin closed a conversation.";
    CONVERSATION_ADMIN_OPENED = "conversation.admin.opened", CONVERSATIONS,
        "an admin opened a conversation.";
    CONVERSATION_ADMIN_SNOOZED = "conversation.admin.snoozed", CONVERSATIONS,
        "an admin snoozed a conversation.";
    CONVERSATION_ADMIN_UNSNOOZED = "conversation.admin.unsnoozed", CONVERSATIONS,
        "an admin unsnoozed a conversation.";
    CONVERSATION_OPERATOR_REPLIED = "conversation.operator.replied", CONVERSATIONS,
        "Fin or a bot replied to a conversation.";
    CONVERSATION_PRIORITY_UPDATED = "conversation.priority.updated", CONVERSATIONS,
        "a conversation's priority changed.";
    CONVERSATION_RATING_ADDED = "conversation.rating.added", CONVERSATIONS,
        "a conversation was rated.";
    CONVERSATION_READ = "conversation.read", CONVERSATIONS,
        "a contact read a conversation. Intercom's reference lists no permission for this \
         topic; this crate assumes Read conversations, as for every other conversation topic.";
    CONVERSATION_CONTACT_ATTACHED = "conversation.contact.attached", CONVERSATIONS,
        "a contact was attached to a conversation.";
    CONVERSATION_CONTACT_DETACHED = "conversation.contact.detached", CONVERSATIONS,
        "a contact was detached from a conversation.";
    CONVERSATION_COMPANY_UPDATED = "conversation.company.updated", CONVERSATIONS,
        "a conversation's company changed.";
    CONVERSATION_DELETED = "conversation.deleted", CONVERSATIONS,
        "a conversation was deleted.";
    CONVERSATION_PART_REDACTED = "conversation_part.redacted", CONVERSATIONS,
        "a conversation part was deleted (redacted).";
    CONVERSATION_PART_TAG_CREATED = "conversation_part.tag.created", CONVERSATIONS,
        "a conversation part was tagged.";

    // Content stat topics.
    CONTENT_STAT_BANNER = "content_stat.banner", CONTENT_DATA, "banner message statistics.";
    CONTENT_STAT_CAROUSEL = "content_stat.carousel", CONTENT_DATA, "mobile carousel statistics.";
    CONTENT_STAT_CHAT = "content_stat.chat", CONTENT_DATA, "chat message statistics.";
    CONTENT_STAT_CHECKLIST = "content_stat.checklist", CONTENT_DATA, "checklist statistics.";
    CONTENT_STAT_CUSTOM_BOT = "content_stat.custom_bot", CONTENT_DATA, "custom bot statistics.";
    CONTENT_STAT_EMAIL = "content_stat.email", CONTENT_DATA, "email statistics.";
    CONTENT_STAT_NEWS_ITEM = "content_stat.news_item", CONTENT_DATA, "news item statistics.";
    CONTENT_STAT_POST = "content_stat.post", CONTENT_DATA, "post message statistics.";
    CONTENT_STAT_PUSH = "content_stat.push", CONTENT_DATA, "push message statistics.";
    CONTENT_STAT_SERIES = "content_stat.series", CONTENT_DATA, "series campaign statistics.";
    CONTENT_STAT_SERIES_WEBHOOK = "content_stat.series.webhook", CONTENT_DATA,
        "series webhook statistics.";
    CONTENT_STAT_SMS = "content_stat.sms", CONTENT_DATA, "SMS statistics.";
    CONTENT_STAT_SURVEY = "content_stat.survey", CONTENT_DATA, "survey statistics.";
    CONTENT_STAT_TOOLTIP_GROUP = "content_stat.tooltip_group", CONTENT_DATA,
        "tooltip statistics.";
    CONTENT_STAT_TOUR = "content_stat.tour", CONTENT_DATA, "product tour statistics.";

    // Other topics.
    EVENT_CREATED = "event.created", EVENTS, "a data event was created.";
    API_REQUEST_COMPLETED = "api.request.completed", API_ACTIVITY,
        "a v3 API request completed.";
    JOB_COMPLETED = "job.completed", JOBS, "a job completed.";
    DATA_CONNECTOR_EXECUTION_COMPLETED = "data_connector.execution.completed", DATA_CONNECTORS,
        "a data connector action finished.";
    PROCEDURE_HITL_NOTIFICATION_CREATED = "procedure.hitl_notification.created", CONVERSATIONS,
        "a Fin procedure waits for human input (Preview API version).";
    PING = "ping", NONE,
        "sent when a webhook is saved or pinged, and from time to time. Always \
         subscribed; needs no permission.";

    // Subscription topics.
    GRANULAR_SUBSCRIBE = "granular.subscribe", CONTACTS,
        "a user subscribed to a message subscription type.";
    GRANULAR_UNSUBSCRIBE = "granular.unsubscribe", CONTACTS,
        "a user unsubscribed from a message subscription type.";

    // Ticket topics.
    TICKET_CREATED = "ticket.created", TICKETS, "a ticket was created.";
    TICKET_STATE_UPDATED = "ticket.state.updated", TICKETS, "a ticket's state changed.";
    TICKET_NOTE_CREATED = "ticket.note.created", TICKETS, "a note was added to a ticket.";
    TICKET_ADMIN_ASSIGNED = "ticket.admin.assigned", TICKETS,
        "a ticket was assigned to an admin.";
    TICKET_TEAM_ASSIGNED = "ticket.team.assigned", TICKETS,
        "a ticket was assigned to a team.";
    TICKET_CONTACT_ATTACHED = "ticket.contact.attached", TICKETS,
        "a contact was attached to a ticket.";
    TICKET_CONTACT_DETACHED = "ticket.contact.detached", TICKETS,
        "a contact was detached from a ticket.";
    TICKET_ATTRIBUTE_UPDATED = "ticket.attribute.updated", TICKETS,
        "a ticket attribute changed.";
    TICKET_ADMIN_REPLIED = "ticket.admin.replied", TICKETS, "an admin replied to a ticket.";
    TICKET_ADMIN_REPLIED_TRANSLATED = "ticket.admin.replied.translated", TICKETS,
        "an admin's ticket reply was translated (Preview API version).";
    TICKET_CONTACT_REPLIED = "ticket.contact.replied", TICKETS,
        "a contact replied to a ticket.";
    TICKET_CLOSED = "ticket.closed", TICKETS,
        "a ticket conversation was closed; the item wraps the ticket in a `ticket` field.";
    TICKET_RESOLVED = "ticket.resolved", TICKETS, "a ticket's state became resolved.";
    TICKET_RATING_PROVIDED = "ticket.rating.provided", TICKETS, "a ticket was rated.";

    // Visitor topics.
    VISITOR_SIGNED_UP = "visitor.signed_up", CONTACTS, "a visitor became a user.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn known_topics_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for topic in Topic::known() {
            assert!(seen.insert(topic.as_str()), "duplicate {topic}");
            let parsed = Topic::from(topic.as_str().to_owned());
            assert_eq!(&parsed, topic);
            assert!(matches!(parsed.0, Cow::Borrowed(_)), "{topic} not interned");
            assert!(!topic.as_str().is_empty());
            assert_eq!(topic.as_str().trim(), topic.as_str());
        }
    }

    #[test]
    fn every_known_topic_but_ping_needs_a_permission() {
        for topic in Topic::known() {
            assert_eq!(
                topic.required_permission().is_none(),
                *topic == Topic::PING,
                "{topic}"
            );
        }
    }

    #[test]
    fn families_map_to_their_permission() {
        for topic in Topic::known() {
            let family = topic.as_str().split('.').next().unwrap_or_default();
            let expected = match family {
                "conversation" | "conversation_part" | "call" | "procedure" => P::ReadConversations,
                "ticket" => P::ReadTickets,
                "contact" | "company" | "visitor" | "granular" => P::ReadOneUserAndOneCompany,
                "admin" => P::ReadAdmins,
                "content_stat" => P::ReadContentData,
                _ => continue,
            };
            assert_eq!(topic.required_permission(), Some(expected), "{topic}");
        }
    }
}
