"""What every stage shares: settings, domain types, the database, endpoints, the model registry."""
