"""Training: configuration, recipes, the loop with exact resume, validation and history."""
