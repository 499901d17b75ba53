//! The app permissions (OAuth scopes) that webhook topics require.

use std::{borrow::Borrow, fmt};

use super::Topic;

/// A permission of an Intercom app, as named in the Developer Hub.
///
/// Intercom sends a topic's notifications only to apps that hold one of the
/// permissions its webhook reference lists for that topic.
/// [`Topic::required_permission`] gives the one to ask for, and
/// [`Permission::required_for`] the de-duplicated list for every topic a
/// subscription uses.
///
/// # Example
///
/// ```
/// use tower_intercom::notification::{Permission, Topic};
///
/// let topics = [
///     Topic::CONVERSATION_USER_CREATED,
///     Topic::CONVERSATION_ADMIN_REPLIED,
///     Topic::CONTACT_USER_CREATED,
///     Topic::PING,
/// ];
/// let needed = Permission::required_for(&topics);
/// assert_eq!(
///     needed,
///     [Permission::ReadOneUserAndOneCompany, Permission::ReadConversations]
/// );
/// assert_eq!(needed[1].to_string(), "Read conversations");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// "Read admins": `admin.*` topics.
    ReadAdmins,
    /// "Read and list articles": `article.*` topics.
    ReadAndListArticles,
    /// "Read and list users and companies" (the webhook reference also
    /// calls it "Read users and companies"): contact, company, visitor and
    /// subscription topics.
    ReadAndListUsersAndCompanies,
    /// "Read and write users": accepted instead of
    /// [`ReadAndListUsersAndCompanies`](Self::ReadAndListUsersAndCompanies)
    /// for most contact topics.
    ReadAndWriteUsers,
    /// "Read one user and one company": the narrowest permission that
    /// receives contact, company, visitor and subscription topics (the
    /// least privilege for them).
    ReadOneUserAndOneCompany,
    /// "Read audiences": `audience.*` topics (Preview API version).
    ReadAudiences,
    /// "Read conversations": conversation, conversation part, call and
    /// procedure topics.
    ReadConversations,
    /// "Read tickets": `ticket.*` topics.
    ReadTickets,
    /// "Read content": `content_import_source.*` topics (Preview API
    /// version).
    ReadContent,
    /// "Read content snippets": `content_snippet.*` topics.
    ReadContentSnippets,
    /// "Read content data": `content_stat.*` topics.
    ReadContentData,
    /// "Read events": `event.created`.
    ReadEvents,
    /// "Read API activity logs": `api.request.completed`.
    ReadApiActivityLogs,
    /// "Read jobs": `job.completed`.
    ReadJobs,
    /// "Read data connectors": `data_connector.execution.completed`.
    ReadDataConnectors,
}

impl Permission {
    /// The permission's name as the Developer Hub shows it, e.g.
    /// `"Read conversations"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadAdmins => "Read admins",
            Self::ReadAndListArticles => "Read and list articles",
            Self::ReadAndListUsersAndCompanies => "Read and list users and companies",
            Self::ReadAndWriteUsers => "Read and write users",
            Self::ReadOneUserAndOneCompany => "Read one user and one company",
            Self::ReadAudiences => "Read audiences",
            Self::ReadConversations => "Read conversations",
            Self::ReadTickets => "Read tickets",
            Self::ReadContent => "Read content",
            Self::ReadContentSnippets => "Read content snippets",
            Self::ReadContentData => "Read content data",
            Self::ReadEvents => "Read events",
            Self::ReadApiActivityLogs => "Read API activity logs",
            Self::ReadJobs => "Read jobs",
            Self::ReadDataConnectors => "Read data connectors",
        }
    }

    /// The permissions an app needs to receive every topic in `topics`:
    /// each topic's [`required_permission`](Topic::required_permission),
    /// without duplicates, in a stable order.
    ///
    /// `ping` needs none. Topics this crate does not know
    /// ([`Topic::is_known`] is false) add nothing: check them against
    /// Intercom's webhook topic reference.
    ///
    /// Accepts anything that iterates over topics or references to them
    /// (`&[Topic]`, `Vec<Topic>`, an iterator of `&Topic`).
    pub fn required_for<I>(topics: I) -> Vec<Permission>
    where
        I: IntoIterator,
        I::Item: Borrow<Topic>,
    {
        let mut permissions: Vec<Permission> = topics
            .into_iter()
            .filter_map(|topic| topic.borrow().required_permission())
            .collect();
        permissions.sort_unstable();
        permissions.dedup();
        permissions
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
