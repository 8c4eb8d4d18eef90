"""Security analytics: honeypot events (validate, normalise to ECS, enrich, score, store, alert),
threat intelligence (feeds, normalisation, scoring, sightings) and the daily report."""
