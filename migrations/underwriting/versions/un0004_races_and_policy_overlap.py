"""underwriting: races end in the rules' answers; one policy per policyholder, currency and period

Revision ID: un0004
Revises: un0003
Create Date: 2026-11-23 21:30:00.000000
"""

from collections.abc import Sequence

revision: str = "un0004"
down_revision: str | None = "un0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
