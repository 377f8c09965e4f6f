"""Partner flows through clients generated from the services' OpenAPI documents."""
