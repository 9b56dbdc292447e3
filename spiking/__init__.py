"""spiking: gene-expression profiles as images, CNNs and their spiking conversions.

Data flows through the sub-packages in this order:

``ingest`` (matrix + labels -> Parquet shards) -> ``preprocess`` (top-k classes,
split, scaling fitted on train) -> ``models`` (CNN_PT and its snnTorch version)
-> ``training`` -> ``evaluation`` (metrics, baselines, results.json) -> ``cli``.
"""

__version__ = "0.1.0"
