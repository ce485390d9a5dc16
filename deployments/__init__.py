"""The Ray Serve application: thin deployments over `pipelines/` and `storage/`, wired in `app.py`."""
