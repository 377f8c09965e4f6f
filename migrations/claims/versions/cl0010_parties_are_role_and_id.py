"""claims: a party that hears of events and owns webhook endpoints is its role and its id
(`policyholder:ph-1`, `bank:bk-1` in `event_parties`; `party_role` beside a webhook endpoint's
`party_id`): a bank's token carrying a policyholder's id no longer reads that policyholder's events
or endpoints

Every event of claims is of a claim (its subject) and was heard by the claim's policyholder and
the banks assigned to its policy when it was filed (`terms.assigned_bank_ids`): a row whose id is
the claim's policyholder becomes `policyholder:`, any other `bank:`; a policyholder also named
among its claim's banks keeps a row for each. A row of an event that is not a claim's was written
by no writer of this service and is dropped. Endpoints: `shared.party_roles_migration` (known as
policyholders: the claims' and the overdue notifications' policyholders).

Revision ID: cl0010
Revises: cl0009
Create Date: 2026-11-25 02:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared import party_roles_migration as roles

revision: str = "cl0010"
down_revision: str | None = "cl0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "claims"


def upgrade() -> None:
    schema = _schema()
    claims = roles.table(schema, "claims")
    own_banks = []
    for claim_id, holder, terms in op.get_bind().execute(sa.text(
        f"SELECT id, policyholder_id, terms FROM {claims}")):  # fmt: skip
        named = json.loads(terms) if isinstance(terms, str) else terms or {}
        if holder in (named.get("assigned_bank_ids") or []):
            own_banks.append(claim_id)
    roles.qualify_by_subject(schema, "claims", "policyholder_id", own_banks)
    roles.add_endpoint_role(schema)
    notices = roles.table(schema, "overdue_notifications")
    roles.attribute_endpoints(schema, [f"SELECT policyholder_id FROM {claims}",
                                       f"SELECT policyholder_id FROM {notices}"])  # fmt: skip


def downgrade() -> None:
    schema = _schema()
    roles.drop_endpoint_role(schema)
    roles.unqualify_event_parties(schema)
