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
    # Plain ALTER TABLE ADD COLUMN, never a batch rebuild: a rebuild of users on SQLite would drop
    # the AUTOINCREMENT that migration 0005 put there, and ids of deleted accounts would come back.
    op.add_column('users', sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column('users', sa.Column('last_login', sa.DateTime(timezone=True), nullable=True))
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
    op.create_index('ix_audit_events_at', 'audit_events', ['at'])
    op.create_index('ix_audit_events_actor', 'audit_events', ['actor'])
    op.create_index('ix_audit_events_event', 'audit_events', ['event'])


def downgrade() -> None:
    op.drop_table('audit_events')
    sqlite = {'recreate': 'always', 'table_kwargs': {'sqlite_autoincrement': True}} \
        if op.get_bind().dialect.name == 'sqlite' else {}
    with op.batch_alter_table('users', schema=None, **sqlite) as batch_op:
        batch_op.drop_column('last_login')
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('disabled')
