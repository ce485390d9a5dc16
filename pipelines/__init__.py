"""Framework-free building blocks of lithoseg: decoding, tiling, the model, rendering, data, training.

Nothing in this package imports Ray, Starlette/FastAPI or boto3 (a test keeps it so).
"""
