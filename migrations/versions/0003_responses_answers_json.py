"""responses: the answers as the API lists them (answers_json, answers_order)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:30:00

Two nullable columns: instant on PostgreSQL and SQLite alike, whatever the table's size. Rows
written before stay NULL and are listed from the answers table, as they were;
`formwright responses backfill` fills them in batches when convenient.
"""

import warnings

import sqlalchemy as sa
from alembic import op

__all__ = ("data_downgrades", "data_upgrades", "downgrade", "schema_downgrades", "schema_upgrades", "upgrade")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        schema_upgrades()
        data_upgrades()


def downgrade() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        data_downgrades()
        schema_downgrades()


def schema_upgrades() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answers_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("answers_order", sa.BigInteger(), nullable=True))


def schema_downgrades() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("answers_order")
        batch_op.drop_column("answers_json")


def data_upgrades() -> None:
    """None: see the module docstring."""


def data_downgrades() -> None:
    """None."""
