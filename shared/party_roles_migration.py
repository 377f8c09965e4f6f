"""What the migrations un0015, cl0010 and co0014 share: a party that hears of events and owns webhook
endpoints becomes its role and its id (`shared.events.Party`), where it was its id alone.

`event_parties.party_id` becomes the party's key, `role:id`; each service says which role each
stored row had (from where its writer took the id: the policyholder of the policy or claim, the bank
of an assignment, the creditor of a case …) and drops what it cannot attribute: a row no writer
could have written, which no role should read. A webhook endpoint's owner takes the role its id
has in the service's records: known as one role only, that role; known as both or as neither, no
role (`party_role` null) and the endpoint disabled, saying why: no party reads it but staff, and it
hears nothing, until it is registered again for the right role (a guess would hand one party's
endpoint, its URL and deliveries, to another)."""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, String, bindparam, text

ROLES = ("policyholder", "bank")
UNATTRIBUTED = (
    "registered before an endpoint's owner was a role and an id, by a party whose role the "
    "service's records do not tell (known as a policyholder and a bank, or as neither): "
    "register it again, naming the role"
)


def table(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def qualify_by_subject(
    schema: str | None, subjects: str, holder: str, holders_also_banks: list[str]
) -> None:
    """`event_parties` of a service whose every event is of a row of `subjects` (its subject id):
    a party whose id is that row's `holder` becomes `policyholder:`, any other `bank:`; the rows in
    `holders_also_banks` (whose holder is also among their banks) keep a `bank:` party for it too.
    A party of an event of no such row was written by no writer of the service and is dropped."""
    parties, events, owners = (
        table(schema, name) for name in ("event_parties", "events", subjects)
    )
    of_subject = (f"SELECT 1 FROM {events} e JOIN {owners} c ON c.id = e.subject_id "
                  f"WHERE e.seq = {parties}.event_seq")  # fmt: skip
    op.execute(text(f"DELETE FROM {parties} WHERE NOT EXISTS ({of_subject})"))
    op.execute(text(f"""
        UPDATE {parties} SET party_id = CASE
            WHEN EXISTS ({of_subject} AND c.{holder} = {parties}.party_id)
            THEN 'policyholder:' || party_id ELSE 'bank:' || party_id END"""))  # fmt: skip
    if holders_also_banks:
        op.execute(text(
            f"INSERT INTO {parties} (party_id, event_seq) SELECT 'bank:' || c.{holder}, "
            f"e.seq FROM {events} e JOIN {owners} c ON c.id = e.subject_id WHERE c.id IN :ids"
        ).bindparams(bindparam("ids", holders_also_banks, expanding=True)))  # fmt: skip


def add_endpoint_role(schema: str | None) -> None:
    with op.batch_alter_table("webhook_endpoints", schema=schema) as batch:
        batch.add_column(Column("party_role", String(16), nullable=True))


def attribute_endpoints(
    schema: str | None, policyholders: list[str], banks: list[str] | None = None
) -> None:
    """Each endpoint's owner role, from the service's records: `policyholders` (and `banks`) are
    SELECTs of the ids known in that role, besides the (already qualified) `event_parties`; an
    endpoint whose id is known in one role only takes it, any other is left without a role and
    disabled (`UNATTRIBUTED`)."""
    parties = table(schema, "event_parties")
    endpoints = table(schema, "webhook_endpoints")

    def known(role: str, selects: list[str]) -> str:
        heard = (f"EXISTS (SELECT 1 FROM {parties} WHERE {parties}.party_id = "
                 f"'{role}:' || webhook_endpoints.party_id)")  # fmt: skip
        return "(" + " OR ".join([heard, *(
            f"webhook_endpoints.party_id IN ({s})" for s in selects)]) + ")"  # fmt: skip

    holder, bank = known("policyholder", policyholders), known("bank", banks or [])
    op.execute(text(f"""
        UPDATE {endpoints} SET party_role = CASE
            WHEN {holder} AND NOT {bank} THEN 'policyholder'
            WHEN {bank} AND NOT {holder} THEN 'bank' END"""))  # fmt: skip
    op.execute(text(f"UPDATE {endpoints} SET status = 'disabled', disabled_reason = :why, "
                    "lease_owner = NULL, lease_until = NULL WHERE party_role IS NULL"
                    ).bindparams(why=UNATTRIBUTED))  # fmt: skip


def drop_endpoint_role(schema: str | None) -> None:
    with op.batch_alter_table("webhook_endpoints", schema=schema) as batch:
        batch.drop_column("party_role")


def unqualify_event_parties(schema: str | None) -> None:
    """Downgrade: back to the id alone; a party heard in both roles is one row again."""
    parties = table(schema, "event_parties")
    op.execute(text(f"""
        DELETE FROM {parties} WHERE party_id LIKE 'bank:%' AND EXISTS (
            SELECT 1 FROM {parties} AS holder
            WHERE holder.event_seq = {parties}.event_seq
              AND holder.party_id = 'policyholder:' || substr({parties}.party_id, 6))"""))  # fmt: skip
    for role in ROLES:
        op.execute(text(f"UPDATE {parties} SET party_id = substr(party_id, {len(role) + 2}) "
                        f"WHERE party_id LIKE '{role}:%'"))  # fmt: skip
