"""IAM member strings as policies spell them, and what kind of principal each names."""

from __future__ import annotations

import re
from functools import lru_cache

from mlplane.model.principals import Principal

PUBLIC = frozenset({"allUsers", "allAuthenticatedUsers"})
CONVENIENCE = ("projectOwner:", "projectEditor:", "projectViewer:")
_FEDERATED = ("principal://", "principalSet://")
_DELETED = re.compile(r"deleted:(user|group|serviceAccount):[^?\s]+@[^?\s]+(\?uid=\d+)?")
# Google-managed service agents: service-NUMBER@*.iam.gserviceaccount.com and the Google APIs
# service agent NUMBER@cloudservices.gserviceaccount.com. (Default compute and Cloud Build
# accounts are ordinary service accounts and are audited like any other.)
_AGENT = re.compile(
    r"serviceAccount:(service-\d+@[a-z0-9-]+\.iam\.gserviceaccount\.com"
    r"|\d+@cloudservices\.gserviceaccount\.com)"
)


@lru_cache(maxsize=1 << 16)
def canonical_member(text: str) -> str:
    """The member as the audit compares it (emails lowercased); ValueError if it is not one.
    Cached: a large policy names the same few thousand members hundreds of thousands of times."""
    if text in PUBLIC:
        return text
    if text.startswith(CONVENIENCE):
        if not text.partition(":")[2]:
            raise ValueError(f"'{text}' names no project")
        return text
    if text.startswith(_FEDERATED):
        return text
    if text.startswith("deleted:"):
        if not _DELETED.fullmatch(text):
            raise ValueError(f"'{text}' is not a deleted-principal member")
        return text
    return Principal.parse(text).member


@lru_cache(maxsize=1 << 16)
def member_kind(member: str) -> str:
    """user | group | domain | serviceAccount | public | deleted | convenience | agent |
    federated, for a canonical member."""
    if member in PUBLIC:
        return "public"
    if member.startswith("deleted:"):
        return "deleted"
    if member.startswith(CONVENIENCE):
        return "convenience"
    if member.startswith(_FEDERATED):
        return "federated"
    if _AGENT.fullmatch(member):
        return "agent"
    return member.partition(":")[0]
