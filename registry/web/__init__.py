"""The web UI: server-rendered pages over the registry's services (``routes.bp``)."""
