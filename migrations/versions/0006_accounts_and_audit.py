"""accounts that can be disabled or told to change their password, and the audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 03:45:00

Existing accounts stay enabled and keep their passwords; the audit log starts empty.
"""
from alembic import op
import sqlalchemy as sa




revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('last_login', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=True),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.Column('details', sa.Text(), nullable=True),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_at', ['at'])
        batch_op.create_index('ix_audit_events_actor', ['actor'])
        batch_op.create_index('ix_audit_events_event', ['event'])


def downgrade() -> None:
    op.drop_table('audit_events')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_login')
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('disabled')
