"""The server's entry point (gunicorn wsgi:app): the app from the environment, and the first admin."""
from app import bootstrap_first_admin, create_app, start_background_work

app = create_app()
bootstrap_first_admin(app)
start_background_work(app)
