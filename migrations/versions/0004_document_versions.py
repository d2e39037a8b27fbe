"""document versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:00:00

Every existing document becomes version 1 of its own family (family_id = id), the head, and the
live version where it is ready.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('is_head', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('is_live', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE documents SET family_id = id")
    op.execute(sa.text("UPDATE documents SET is_live = :yes WHERE status = 'ready'").bindparams(yes=True))
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.alter_column('family_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index(batch_op.f('ix_documents_family_id'), ['family_id'], unique=False)
        batch_op.create_unique_constraint('uq_documents_family_version', ['family_id', 'version'])
        batch_op.create_index('uq_documents_family_head', ['family_id'], unique=True,
                              sqlite_where=sa.text('is_head'), postgresql_where=sa.text('is_head'))
        batch_op.create_index('uq_documents_family_live', ['family_id'], unique=True,
                              sqlite_where=sa.text('is_live'), postgresql_where=sa.text('is_live'))


def downgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('uq_documents_family_live')
        batch_op.drop_index('uq_documents_family_head')
        batch_op.drop_constraint('uq_documents_family_version', type_='unique')
        batch_op.drop_index(batch_op.f('ix_documents_family_id'))
        batch_op.drop_column('is_live')
        batch_op.drop_column('is_head')
        batch_op.drop_column('version')
        batch_op.drop_column('family_id')
