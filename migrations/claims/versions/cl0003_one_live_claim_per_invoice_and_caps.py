"""claims: one live claim per invoice; caps serialised per policy

Revision ID: cl0003
Revises: cl0002
Create Date: 2026-11-23 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cl0003"
down_revision: str | None = "cl0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claimed_invoices",
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("buyer_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("claim_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["claims.claims.id"],
            name=op.f("fk_claimed_invoices_claim_id_claims"),
        ),
        sa.PrimaryKeyConstraint(
            "policy_id", "buyer_id", "number", name=op.f("pk_claimed_invoices")
        ),
        schema="claims",
    )
    op.create_index(
        op.f("ix_claimed_invoices_claim_id"), "claimed_invoices", ["claim_id"], unique=False,
        schema="claims",
    )  # fmt: skip
    op.create_table(
        "policy_caps",
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_policy_caps")),
        schema="claims",
    )
    # The invoices of the live claims already filed: where earlier concurrent filings left two
    # live claims on one invoice, the first filed holds it. (Statements run here are not
    # schema-translated: SQLite has no schema.)
    schema = None if op.get_bind().dialect.name == "sqlite" else "claims"
    claims = sa.table("claims", sa.column("id"), sa.column("policy_id"), sa.column("buyer_id"),
                      sa.column("status"), schema=schema)  # fmt: skip
    invoices = sa.table("claim_invoices", sa.column("claim_id"), sa.column("number"),
                        schema=schema)  # fmt: skip
    claimed = sa.table("claimed_invoices", sa.column("policy_id"), sa.column("buyer_id"),
                       sa.column("number"), sa.column("claim_id"), schema=schema)  # fmt: skip
    first = (
        sa.select(
            claims.c.policy_id, claims.c.buyer_id, invoices.c.number, sa.func.min(claims.c.id)
        )
        .select_from(invoices.join(claims, claims.c.id == invoices.c.claim_id))
        .where(claims.c.status.not_in(("rejected", "lapsed")))
        .group_by(claims.c.policy_id, claims.c.buyer_id, invoices.c.number)
    )
    op.execute(claimed.insert().from_select(["policy_id", "buyer_id", "number", "claim_id"], first))


def downgrade() -> None:
    op.drop_table("policy_caps", schema="claims")
    op.drop_index(
        op.f("ix_claimed_invoices_claim_id"), table_name="claimed_invoices", schema="claims"
    )
    op.drop_table("claimed_invoices", schema="claims")
