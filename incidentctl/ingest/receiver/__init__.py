"""The receiver: an ASGI app that appends every webhook body to the raw archive.

It knows nothing about incidents or Slack. `app.py` routes and answers, `auth.py` checks
credentials, `writer.py` commits rows in groups, `metrics.py` counts, `server.py` runs uvicorn.
"""
