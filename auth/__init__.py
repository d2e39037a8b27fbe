"""Users, passwords, tokens, API keys, roles and the decorators that guard routes."""
