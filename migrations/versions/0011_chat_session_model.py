"""chat sessions: the model a session was started with

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 02:30:00

Existing sessions have none: they answer with the active (default) model, as before.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat_sessions', schema=None) as batch_op:
        batch_op.drop_column('model')
