"""user ids never reused, tokens bound to their account

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 23:40:00

On SQLite the users table is rebuilt with AUTOINCREMENT, so the id of a deleted account is never
given to a new one (Database.migrate turns foreign keys off around migrations: dropping the old
table would otherwise cascade into every user's rows). Each account gets a random token_key that
its tokens carry; tokens issued before this migration carry none and need a new login.
"""
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _rebuilt_on_sqlite() -> dict:
    """SQLite learns AUTOINCREMENT only by a rebuild; PostgreSQL's sequences never reuse ids."""
    if op.get_bind().dialect.name == 'sqlite':
        return {'recreate': 'always', 'table_kwargs': {'sqlite_autoincrement': True}}
    return {}


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None, **_rebuilt_on_sqlite()) as batch_op:
        batch_op.add_column(sa.Column('token_key', sa.String(length=32), nullable=True))
    connection = op.get_bind()
    ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM users"))]
    for user_id in ids:
        connection.execute(sa.text("UPDATE users SET token_key = :key WHERE id = :id"),
                           {"key": secrets.token_hex(16), "id": user_id})
    with op.batch_alter_table('users', schema=None, **_rebuilt_on_sqlite()) as batch_op:
        batch_op.alter_column('token_key', existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('token_key')
