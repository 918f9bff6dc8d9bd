"""Raw row → alert events → decision → incident: the model, the decision, the store, processing,
listing and people's actions."""
