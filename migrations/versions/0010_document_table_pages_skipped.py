"""documents: how many PDF pages were not searched for tables

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:00:00

Existing documents were searched under a time cap that left no record: their count is 0.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('table_pages_skipped', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_column('table_pages_skipped')
