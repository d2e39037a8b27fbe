"""Error statistics, health, Prometheus metrics and the system monitor; a leaf any layer may use."""
