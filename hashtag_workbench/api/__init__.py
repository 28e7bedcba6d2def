"""The HTTP prediction API (`hashtags serve`): FastAPI over the same service function as `hashtags predict`.

Only jobs/serve.py imports this package (.importlinter); create_app in app.py is the entry point.
"""
