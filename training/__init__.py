"""Building a model: synthetic cores, labelled folders, training, averaging, evaluation,
cross-validation and the held-out checks of reduced-precision engines. The serving path
(`pipelines/`, `deployments/`) never imports this package, except `pipelines.engines`, which
draws its build-time parity tiles from the synthetic core generator.
"""
