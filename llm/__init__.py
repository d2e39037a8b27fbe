"""Language models: the registry read from models.json (engines and the scheduler join it later)."""
