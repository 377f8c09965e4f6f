"""underwriting: a party that hears of events and owns webhook endpoints is its role and its id
(`policyholder:ph-1`, `bank:bk-1` in `event_parties`; `party_role` beside a webhook endpoint's
`party_id`): a bank's token carrying a policyholder's id no longer reads that policyholder's events
or endpoints

Each stored party row takes the role its id has here: the policyholder of a policy, or a bank of
an assignment (assignments are never deleted). An id that is both has its role read per event,
from the event's policy (`policy_id` in its data) or, for a grade, from the policies holding a
limit or a request on the buyer: heard in both roles, it keeps a row for each. A row whose id is
neither was written by no writer of this service and is dropped. Endpoints:
`shared.party_roles_migration`.

Revision ID: un0015
Revises: un0014
Create Date: 2026-11-25 02:00:00.000000
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared import party_roles_migration as roles

revision: str = "un0015"
down_revision: str | None = "un0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The service's schema; none on SQLite (where these statements are not schema-translated)."""
    return None if op.get_bind().dialect.name == "sqlite" else "underwriting"


def upgrade() -> None:
    schema = _schema()
    parties, policies = roles.table(schema, "event_parties"), roles.table(schema, "policies")
    assignments = roles.table(schema, "policy_assignments")
    holders = f"SELECT policyholder_id FROM {policies}"
    banks = f"SELECT bank_id FROM {assignments}"
    op.execute(sa.text(f"DELETE FROM {parties} WHERE party_id NOT IN ({holders}) "
                       f"AND party_id NOT IN ({banks})"))  # fmt: skip
    _attribute_per_event(schema, holders, banks)
    op.execute(sa.text(f"UPDATE {parties} SET party_id = 'policyholder:' || party_id "
                       f"WHERE party_id IN ({holders}) AND party_id NOT IN ({banks})"))  # fmt: skip
    op.execute(sa.text(f"UPDATE {parties} SET party_id = 'bank:' || party_id "
                       f"WHERE party_id IN ({banks}) AND party_id NOT IN ({holders})"))  # fmt: skip
    roles.add_endpoint_role(schema)
    roles.attribute_endpoints(schema, [holders], [banks])


def _attribute_per_event(schema: str | None, holders: str, banks: str) -> None:
    """The rows of ids that are both a policyholder and a bank: each event's own role(s)."""
    bind = op.get_bind()
    t = lambda name: roles.table(schema, name)  # noqa: E731
    both = bind.execute(sa.text(
        f"SELECT DISTINCT party_id FROM {t('event_parties')} "
        f"WHERE party_id IN ({holders}) AND party_id IN ({banks})")).scalars().all()  # fmt: skip
    if not both:
        return
    named = sa.bindparam("ids", list(both), expanding=True)
    rows = bind.execute(sa.text(
        f"SELECT p.party_id, p.event_seq, e.data FROM {t('event_parties')} p "
        f"JOIN {t('events')} e ON e.seq = p.event_seq WHERE p.party_id IN :ids"
    ).bindparams(named)).all()  # fmt: skip
    holder_of = {policy: holder for policy, holder in bind.execute(
        sa.text(f"SELECT id, policyholder_id FROM {t('policies')}"))}  # fmt: skip
    assigned = {(policy, party) for policy, party in bind.execute(sa.text(
        f"SELECT policy_id, bank_id FROM {t('policy_assignments')} WHERE bank_id IN :ids"
    ).bindparams(named))}  # fmt: skip
    held: dict[str, set[str]] = {}
    for buyer, policy in bind.execute(sa.text(
        f"SELECT buyer_id, policy_id FROM {t('credit_limits')} UNION "
        f"SELECT buyer_id, policy_id FROM {t('limit_requests')}")):  # fmt: skip
        held.setdefault(buyer, set()).add(policy)
    qualified = []
    for party, seq, data in rows:
        payload: dict[str, Any] = json.loads(data) if isinstance(data, str) else data or {}
        policy = payload.get("policy_id")
        policies = {policy} if policy else held.get(payload.get("buyer_id") or "", set())
        for role in _roles(party, policies, holder_of, assigned):
            qualified.append({"party_id": f"{role}:{party}", "event_seq": seq})
    op.execute(sa.text(f"DELETE FROM {t('event_parties')} WHERE party_id IN :ids"
                       ).bindparams(named))  # fmt: skip
    if qualified:
        bind.execute(sa.text(f"INSERT INTO {t('event_parties')} (party_id, event_seq) "
                             "VALUES (:party_id, :event_seq)"), qualified)  # fmt: skip


def _roles(
    party: str, policies: set[str], holder_of: dict[str, str], assigned: set[tuple[str, str]]
) -> list[str]:
    found = []
    if any(holder_of.get(p) == party for p in policies):
        found.append("policyholder")
    if any((p, party) in assigned for p in policies):
        found.append("bank")
    return found


def downgrade() -> None:
    schema = _schema()
    roles.drop_endpoint_role(schema)
    roles.unqualify_event_parties(schema)
