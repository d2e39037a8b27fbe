"""documents in workspaces, and chat sessions with a scope

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 07:00:00

Every existing document stays in its owner's personal space (workspace_id NULL), and every
existing session keeps searching everything its user can read (scope NULL). The same bytes are
now one document per space instead of one per user.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

PERSONAL = sa.text('workspace_id IS NULL')
SHARED = sa.text('workspace_id IS NOT NULL')


def upgrade() -> None:
    # The partial indexes are dropped before SQLite's table rebuild and made again after it, so
    # their WHERE clauses cannot be lost in the copy.
    op.drop_index('uq_documents_family_live', table_name='documents')
    op.drop_index('uq_documents_family_head', table_name='documents')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_constraint('uq_documents_user_sha256', type_='unique')
        batch_op.add_column(sa.Column('workspace_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key('fk_documents_workspace_id_workspaces', 'workspaces', ['workspace_id'], ['id'],
                                    ondelete='CASCADE')
    op.create_index('ix_documents_workspace_id', 'documents', ['workspace_id'])
    op.create_index('uq_documents_family_head', 'documents', ['family_id'], unique=True,
                    sqlite_where=sa.text('is_head'), postgresql_where=sa.text('is_head'))
    op.create_index('uq_documents_family_live', 'documents', ['family_id'], unique=True,
                    sqlite_where=sa.text('is_live'), postgresql_where=sa.text('is_live'))
    op.create_index('uq_documents_personal_sha256', 'documents', ['user_id', 'sha256'], unique=True,
                    sqlite_where=PERSONAL, postgresql_where=PERSONAL)
    op.create_index('uq_documents_workspace_sha256', 'documents', ['workspace_id', 'sha256'], unique=True,
                    sqlite_where=SHARED, postgresql_where=SHARED)
    op.add_column('chat_sessions', sa.Column('scope', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('chat_sessions', 'scope')
    op.execute("DELETE FROM documents WHERE workspace_id IS NOT NULL")
    op.drop_index('uq_documents_workspace_sha256', table_name='documents')
    op.drop_index('uq_documents_personal_sha256', table_name='documents')
    op.drop_index('uq_documents_family_live', table_name='documents')
    op.drop_index('uq_documents_family_head', table_name='documents')
    op.drop_index('ix_documents_workspace_id', table_name='documents')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_constraint('fk_documents_workspace_id_workspaces', type_='foreignkey')
        batch_op.drop_column('workspace_id')
        batch_op.create_unique_constraint('uq_documents_user_sha256', ['user_id', 'sha256'])
    op.create_index('uq_documents_family_head', 'documents', ['family_id'], unique=True,
                    sqlite_where=sa.text('is_head'), postgresql_where=sa.text('is_head'))
    op.create_index('uq_documents_family_live', 'documents', ['family_id'], unique=True,
                    sqlite_where=sa.text('is_live'), postgresql_where=sa.text('is_live'))
