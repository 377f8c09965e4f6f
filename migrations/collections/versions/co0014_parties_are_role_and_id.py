"""collections: a party that hears of events and owns webhook endpoints is its role and its id
(`policyholder:ph-1`, `bank:bk-1` in `event_parties`; `party_role` beside a webhook endpoint's
`party_id`): a bank's token carrying a policyholder's id no longer reads that policyholder's events
or endpoints

Every event of collections is of a case (its subject) and was heard by the case's creditor (a
policyholder: the role that reads its own cases) and its loss payees (the banks of the claim's
policy): a row whose id is the case's creditor becomes `policyholder:`, any other `bank:`; a
creditor also among its case's loss payees keeps a row for each. A row of an event that is not a
case's was written by no writer of this service and is dropped. Endpoints:
`shared.party_roles_migration` (known as policyholders: the cases' creditors).

Revision ID: co0014
Revises: co0013
Create Date: 2026-11-25 02:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared import party_roles_migration as roles

revision: str = "co0014"
down_revision: str | None = "co0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "collections"


def upgrade() -> None:
    schema = _schema()
    cases = roles.table(schema, "cases")
    own_payees = []
    for case_id, creditor, payees in op.get_bind().execute(sa.text(
        f"SELECT id, creditor_id, loss_payee_ids FROM {cases}")):  # fmt: skip
        named = json.loads(payees) if isinstance(payees, str) else payees or []
        if creditor in named:
            own_payees.append(case_id)
    roles.qualify_by_subject(schema, "cases", "creditor_id", own_payees)
    roles.add_endpoint_role(schema)
    roles.attribute_endpoints(schema, [f"SELECT creditor_id FROM {cases}"])


def downgrade() -> None:
    schema = _schema()
    roles.drop_endpoint_role(schema)
    roles.unqualify_event_parties(schema)
