"""What keeps a long-running install healthy: backup and restore (more maintenance to come)."""
