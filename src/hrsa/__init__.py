"""hrsa: Hierarchical Representation Similarity Analysis of base vs reasoning LLMs.

The library behind the hrsa-workflow Snakemake workflow; the data contracts between its stages
are in docs/contracts.md.
"""

__version__ = "0.1.0"
