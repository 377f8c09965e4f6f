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
    t = lambda name: roles.table(schema, name)  # noqa: E731
    parties, events, claims = t("event_parties"), t("events"), t("claims")
    of_claim = (f"SELECT 1 FROM {events} e JOIN {claims} c ON c.id = e.subject_id "
                f"WHERE e.seq = {parties}.event_seq")  # fmt: skip
    op.execute(sa.text(f"DELETE FROM {parties} WHERE NOT EXISTS ({of_claim})"))
    op.execute(sa.text(f"""
        UPDATE {parties} SET party_id = CASE
            WHEN EXISTS ({of_claim} AND c.policyholder_id = {parties}.party_id)
            THEN 'policyholder:' || party_id ELSE 'bank:' || party_id END"""))  # fmt: skip
    bind = op.get_bind()
    own_banks = []
    for claim_id, holder, terms in bind.execute(sa.text(
        f"SELECT id, policyholder_id, terms FROM {claims}")):  # fmt: skip
        named = json.loads(terms) if isinstance(terms, str) else terms or {}
        if holder in (named.get("assigned_bank_ids") or []):
            own_banks.append(claim_id)
    if own_banks:
        op.execute(sa.text(
            f"INSERT INTO {parties} (party_id, event_seq) SELECT 'bank:' || c.policyholder_id, "
            f"e.seq FROM {events} e JOIN {claims} c ON c.id = e.subject_id WHERE c.id IN :ids"
        ).bindparams(sa.bindparam("ids", own_banks, expanding=True)))  # fmt: skip
    roles.add_endpoint_role(schema)
    roles.attribute_endpoints(schema, [f"SELECT policyholder_id FROM {claims}",
                                       f"SELECT policyholder_id FROM {t('overdue_notifications')}"])  # fmt: skip


def downgrade() -> None:
    schema = _schema()
    roles.drop_endpoint_role(schema)
    roles.unqualify_event_parties(schema)
