"""responses: the answers as the API lists them (answers_json, answers_order)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:30:00

Two nullable columns: instant on PostgreSQL and SQLite alike, whatever the table's size (the
keyset index is rebuilt on PostgreSQL with two included columns: a few seconds per million rows). Rows
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


_INDEX = "ix_responses_form_id_submitted_at"
_KEY = ["form_id", "submitted_at", "id"]


def schema_upgrades() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answers_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("answers_order", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # The keyset index also carries updated_at and status, so the CSV export reads the index
        # alone and never the table rows, which now hold the answers' copy.
        op.drop_index(_INDEX, table_name="responses")
        op.create_index(_INDEX, "responses", _KEY, postgresql_include=["updated_at", "status"])


def schema_downgrades() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(_INDEX, table_name="responses")
        op.create_index(_INDEX, "responses", _KEY)
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("answers_order")
        batch_op.drop_column("answers_json")


def data_upgrades() -> None:
    """None: see the module docstring."""


def data_downgrades() -> None:
    """None."""
