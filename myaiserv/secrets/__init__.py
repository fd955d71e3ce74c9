"""Provider API keys, encrypted at rest in PostgreSQL under the deployment's secret keys."""
