"""Loaders for IR test collections: judged corpora for evaluating and benchmarking search."""
