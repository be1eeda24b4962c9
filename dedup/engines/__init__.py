"""Engines other than the embedded polars one. Each runs the same stage functions (``dedup.pipeline.
document_stage``, the pieces of ``dedup.cluster`` and ``dedup.garble``) and only moves data between
them: reading, the shuffles, the joins back, writing."""
