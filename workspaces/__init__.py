"""Workspaces: spaces a team shares, with members in the roles viewer, editor and owner."""
