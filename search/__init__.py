"""Search stage: search spaces, OptunaSearch with ASHA, Ray start-up, the dashboard."""
