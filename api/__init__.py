"""HTTP plumbing shared by the routes: service lookup, the error shape, validation, OpenAPI."""
