"""A memory marketplace on OCI registries: publish, find, pull and subscribe to signed cubes.

Any OCI-compliant registry (Docker Hub, GHCR, Harbor, Zot, ECR, Artifactory, the CNCF
distribution registry) stores, replicates and guards published cubes; nothing runs on the
server side. A published cube is an OCI artifact whose layers are the members of a MIP archive
(:mod:`memcube.marketplace.media`), signed with the MIP Ed25519 scheme. A channel (a tag) moves
from a full cube to deltas (new and changed memories, tombstones) that name their base as the
OCI ``subject``; a subscriber applies them in order, idempotently, with the import conflict
policy, and every pulled memory keeps which publisher it came from
(``item.provenance.detail["publisher"]``), which the prompt block shows
(:func:`memcube.prompting.publisher_label`).

Use it through :class:`memcube.MemCube` (``publish``, ``pull``, ``subscribe``, ``sync``) or the
``memcube publish / search-registry / pull / sync`` commands. Offline check of a reference:

    >>> parse_reference("oci://ghcr.io/acme/team-kb:main").channel
    'oci://ghcr.io/acme/team-kb:main'

Registry credentials come from ``MEMCUBE_REGISTRY_USERNAME`` / ``MEMCUBE_REGISTRY_PASSWORD``
or the docker config (:mod:`memcube.marketplace.credentials`) and are never stored in a cube.
"""

from memcube.marketplace.credentials import Credentials, find_credentials
from memcube.marketplace.reference import Reference, parse_reference
from memcube.marketplace.service import (
    DEFAULT_MAX_BYTES,
    Conflict,
    Listing,
    Marketplace,
    PublishReport,
    SyncReport,
    publisher_of,
    pull,
)
from memcube.marketplace.state import ChannelState, Subscription, item_digest
from memcube.marketplace.trust import RevocationList, TrustStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ChannelState",
    "Conflict",
    "Credentials",
    "Listing",
    "Marketplace",
    "PublishReport",
    "Reference",
    "RevocationList",
    "Subscription",
    "SyncReport",
    "TrustStore",
    "find_credentials",
    "item_digest",
    "parse_reference",
    "publisher_of",
    "pull",
]
